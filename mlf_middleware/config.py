"""Environment variables, defaults and option checks, declared once."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .exceptions import ConfigError

__all__ = ["ENVIRONMENT", "EnvVar", "env_flag", "env_float", "env_str"]


@dataclass(frozen=True)
class EnvVar:
    """One environment variable the library reads, with its meaning."""

    name: str
    default: str | None
    meaning: str


ENVIRONMENT: dict[str, EnvVar] = {
    v.name: v
    for v in (
        EnvVar(
            "MLF_SINK",
            "sqlite:///mlf_predictions.db",
            "sink URL (or several, comma-separated) of the default recorder",
        ),
        EnvVar(
            "MLF_DISABLED",
            "0",
            "1 turns all capture into a pass-through that records nothing",
        ),
        EnvVar(
            "MLF_FLUSH_TIMEOUT",
            "5",
            "seconds that flush() and close() wait when given timeout=None",
        ),
        EnvVar(
            "MLF_SPOOL_DIR",
            None,
            "folder for spool and dead-letter files (default: user cache)",
        ),
        EnvVar(
            "MLF_ACTUALS_TOKEN",
            None,
            "bearer token that actuals_app requires when given no token=",
        ),
    )
}


def env_str(name: str) -> str | None:
    """Return the variable's value, else its declared default."""
    var = ENVIRONMENT[name]
    value = os.environ.get(name, "").strip()

    return value or var.default


def env_flag(name: str) -> bool:
    """Read a boolean variable: 1/true/yes/on are true, 0/false/no/off false."""
    value = (env_str(name) or "").lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False

    raise ConfigError(f"{name}={value!r} is not a boolean (use 1 or 0)")


def env_float(name: str, *, minimum: float = 0.0) -> float:
    """Read a number variable that must be at least ``minimum``."""
    raw = env_str(name)
    try:
        value = float(raw or "")
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")

    return value
