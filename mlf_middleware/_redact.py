"""Redaction: values replaced before encoding, so they never leave the caller."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import ConfigError

__all__ = ["REDACTED", "apply_redaction", "parse_paths"]

REDACTED = "[REDACTED]"


@functools.lru_cache(maxsize=256)
def parse_paths(paths: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Split dotted paths; those not under ``raw_data.`` are feature paths."""
    if isinstance(paths, str):
        raise ConfigError("redact must be a list of paths, not one string")
    parsed = []
    for path in paths:
        if not isinstance(path, str) or not path or "" in path.split("."):
            raise ConfigError(f"redact: bad path {path!r}")
        parts = tuple(path.split("."))
        if any(part in ("*", "**") or part.isdigit() for part in parts):
            # Paths name keys of mappings; lists are not walked into, and a
            # path that silently matched nothing would leak the value.
            raise ConfigError(
                f"redact: {path!r}: paths name mapping keys only "
                "(no wildcards or list positions)"
            )
        if parts[0] != "raw_data":
            parts = ("features", *parts)
        parsed.append(parts)
    return tuple(parsed)


def apply_redaction(wire: dict[str, Any], paths: Iterable[tuple[str, ...]]) -> None:
    """Replace each path's value, copying the dicts on the way.

    The caller's own dicts are never changed: every dict on a path is copied
    before the value in it is replaced.
    """
    for path in paths:
        node: Any = wire
        for depth, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                break
            if depth == len(path) - 1:
                node[key] = REDACTED
                break
            child = node[key]
            if isinstance(child, Mapping):
                child = dict(child)
                node[key] = child
            node = child
