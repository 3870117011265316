"""What report and tail share: open a store, parse times, read rows."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..exceptions import ConfigError, MLFError
from ..sinks import open_sink

__all__ = [
    "UsageError",
    "format_when",
    "open_store",
    "parse_when",
    "read_rows",
    "silence_stdout",
]

_RELATIVE = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class UsageError(ConfigError):
    """A problem with the command's input: print it and exit 2."""


def parse_when(
    text: str, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> datetime:
    """Parse an ISO 8601 date or time (naive is UTC), or ``30m``/``24h``/``7d`` ago."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = int(relative[1]), _UNITS[relative[2]]
        try:
            return now() - timedelta(**{unit: amount})
        except OverflowError:
            raise argparse.ArgumentTypeError(
                f"{text!r} reaches back before the year 1"
            ) from None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (2026-01-31, "
            "2026-01-31T12:00Z) nor a span back from now (30m, 24h, 7d)"
        ) from None

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_when(value: datetime) -> str:
    """Write a UTC instant as RFC 3339 with microseconds and ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def open_store(url: str) -> Any:
    """Open the store at ``url``; raise UsageError unless it can be read back."""
    try:
        store = open_sink(url)
    except (MLFError, OSError) as exc:
        raise UsageError(f"--sink: {exc}") from None
    except ImportError as exc:
        raise UsageError(
            f"--sink: this store needs a library that is not installed ({exc.name}):"
            " install the extra of that sink, e.g. 'mlf-middleware[postgres]'"
        ) from None
    if not callable(getattr(store, "joined", None)):
        scheme = url.split(":", 1)[0]
        raise UsageError(
            f"--sink: {scheme} is not a store that can be read back "
            "(use sqlite, postgresql or parquet)"
        )
    path = getattr(store, "path", None)
    if path is not None and not path.exists():
        # A mistyped folder would otherwise read as an empty store.
        raise UsageError(f"--sink: no store at {path}")

    return store


def read_rows(
    store: Any,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    """Return ``store.joined(...)``; raise UsageError when it cannot be read."""
    try:
        return list(store.joined(model, start, end))
    except MLFError as exc:
        raise UsageError(f"--sink: {exc}") from None
    except Exception as exc:  # the stores' own errors: sqlite3, psycopg, duckdb
        name = getattr(store, "name", type(store).__name__)
        detail = str(exc).splitlines()[0] if str(exc) else ""
        if type(exc).__module__.startswith("psycopg"):
            # PostgreSQL's messages may quote stored values: the code only.
            detail = f"SQLSTATE {getattr(exc, 'sqlstate', None) or '?'}"
        raise UsageError(
            f"--sink: cannot read {name}: {type(exc).__name__}: {detail}"
        ) from None


def silence_stdout() -> None:
    """After a closed pipe (``| head``): send what is left of stdout nowhere.

    Python would otherwise report the broken pipe again when it flushes
    stdout at exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
