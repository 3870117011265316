"""Environment variables, defaults and option checks, declared once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigError

__all__ = [
    "ENVIRONMENT",
    "MAX_SECONDS",
    "EnvVar",
    "check_recorder_options",
    "check_timeout",
    "env_flag",
    "env_float",
    "env_str",
]


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
    if not minimum <= value <= MAX_SECONDS:
        raise ConfigError(f"{name}={raw!r} must be from {minimum:g} to {MAX_SECONDS:g}")

    return value


# Longest wait any option may ask for: threading's waits refuse more, and a
# deadline a day away is "forever" for a flush.
MAX_SECONDS = 86_400.0


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if not integer and not value <= MAX_SECONDS:
        raise ConfigError(f"{name} must be at most {MAX_SECONDS:g} s, got {value!r}")


def check_timeout(name: str, value: object) -> float:
    """A number of seconds from 0 to a day (``flush``/``close`` timeouts)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if not 0.0 <= value <= MAX_SECONDS:
        raise ConfigError(f"{name} must be from 0 to {MAX_SECONDS:g} s, got {value!r}")
    return float(value)


def check_recorder_options(given: dict[str, Any]) -> dict[str, Any]:
    """Validate Recorder's options (naming the bad one); return them.

    The returned mapping is what a Recorder pickles as.
    """
    from ._channel import OVERFLOW_POLICIES
    from ._redact import parse_paths

    options = {k: v for k, v in given.items() if k != "self"}
    rate = options["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ConfigError(f"sample_rate must be a number, got {rate!r}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"sample_rate must be between 0 and 1, got {rate!r}")
    for name in ("batch_size", "max_queue_records", "max_queue_bytes"):
        _positive(name, options[name], integer=True)
    _positive("max_record_bytes", options["max_record_bytes"], integer=True)
    _positive("max_delay", options["max_delay"])
    if options["flush_timeout"] is not None:
        _positive("flush_timeout", options["flush_timeout"])
    if options["overflow"] not in OVERFLOW_POLICIES:
        raise ConfigError(
            f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, "
            f"got {options['overflow']!r}"
        )
    _positive("block_timeout", options["block_timeout"])
    _positive("max_spool_bytes", options["max_spool_bytes"], integer=True)
    spool = options["spool_dir"]
    if spool is not None and not isinstance(spool, bool | str | os.PathLike):
        raise ConfigError("spool_dir must be a path, False or None")
    if options["enabled"] is not None and not isinstance(options["enabled"], bool):
        raise ConfigError(
            f"enabled must be True, False or None, got {options['enabled']!r}"
        )
    if options["clock"] is not None and not callable(options["clock"]):
        raise ConfigError("clock must be a callable returning a datetime, or None")
    mvf = options["model_version_fqn"]
    if mvf is not None and not isinstance(mvf, str):
        raise ConfigError("model_version_fqn must be a string or None")
    if isinstance(options["redact"], str):
        raise ConfigError("redact must be a list of paths, not one string")
    options["redact"] = tuple(options["redact"])
    parse_paths(options["redact"])

    return options
