"""Sinks: where records go. ``open_sink(url)`` is the one registry of schemes."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl

from ..exceptions import ConfigError, SinkRejected, SinkUnavailable

if TYPE_CHECKING:
    from ..records import Actual, Prediction

__all__ = [
    "HTTPSink",
    "JSONLSink",
    "KafkaSink",
    "MemorySink",
    "ParquetSink",
    "PostgresSink",
    "SQLiteSink",
    "Sink",
    "SinkRejected",
    "SinkUnavailable",
    "StdoutSink",
    "open_sink",
]


@runtime_checkable
class Sink(Protocol):
    """What the pipeline needs of a sink.

    ``write`` takes one batch; it raises ``SinkRejected`` for records the sink
    will never accept, and ``SinkUnavailable`` (or any other exception) for
    "try again later". A sink may also offer ``write_wire(lines)``, taking the
    records' encoded JSON bytes, which the pipeline then prefers.
    """

    def write(self, records: Sequence[Prediction | Actual]) -> None: ...

    def close(self) -> None: ...


# scheme -> (module in this package, class, how the URL is read):
#   "file": the path after "scheme:///" (SQLAlchemy's rule), options from the
#           query string, typed by the class's ``url_options``;
#   "bare": no path, options from the query string;
#   "url":  the class's ``from_url(url)`` reads the whole URL itself.
_SCHEMES: dict[str, tuple[str, str, str]] = {
    "sqlite": ("sqlite", "SQLiteSink", "file"),
    "jsonl": ("jsonl", "JSONLSink", "file"),
    "parquet": ("parquet", "ParquetSink", "file"),
    "memory": ("memory", "MemorySink", "bare"),
    "stdout": ("stdout", "StdoutSink", "bare"),
    "postgresql": ("postgres", "PostgresSink", "url"),
    "postgres": ("postgres", "PostgresSink", "url"),
    "kafka": ("kafka", "KafkaSink", "url"),
    "http": ("http", "HTTPSink", "url"),
    "https": ("http", "HTTPSink", "url"),
}

_LAZY = {name: module for module, name, _ in _SCHEMES.values()}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _split(url: str) -> tuple[str, str, dict[str, str]]:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"sink URL must look like scheme://..., got {url!r:.80}")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        known = ", ".join(sorted(_SCHEMES))
        raise ConfigError(f"unknown sink scheme {scheme!r} (known: {known})")
    rest, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))

    return scheme, rest, options


def _file_path(scheme: str, rest: str) -> Path:
    """SQLAlchemy's rule: ``x:///rel`` is relative, ``x:////abs`` absolute."""
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(
            f"{scheme} sink URL needs a path: {scheme}:///relative/path or "
            f"{scheme}:////absolute/path"
        )
    return Path(rest[1:]).expanduser().absolute()


def resolve_url(url: str) -> str:
    """Return ``url`` with a relative file path made absolute (picklable)."""
    scheme, rest, options = _split(url)
    if _SCHEMES[scheme][2] != "file":
        return url
    path = _file_path(scheme, rest)
    query = "&".join(f"{k}={v}" for k, v in options.items())

    return f"{scheme}:///{path}" + (f"?{query}" if query else "")


def open_sink(url: str) -> Any:
    """Build a sink from a URL such as ``sqlite:///predictions.db``."""
    scheme, rest, options = _split(url)
    module_name, class_name, kind = _SCHEMES[scheme]
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls = getattr(module, class_name)
    if kind == "url":
        return cls.from_url(url)
    if kind == "file":
        return cls(_file_path(scheme, rest), **_options(cls, scheme, options))
    if rest.strip("/"):
        raise ConfigError(f"{scheme}:// takes no path, got {url!r}")

    return cls(**_options(cls, scheme, options))


def _options(cls: Any, scheme: str, given: dict[str, str]) -> dict[str, Any]:
    """Convert URL query options by the types the sink declares."""
    declared: dict[str, type] = getattr(cls, "url_options", {})
    options: dict[str, Any] = {}
    for key, raw in given.items():
        if key not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"{scheme} sink: unknown option {key!r} (allowed: {allowed})"
            )
        try:
            options[key] = declared[key](raw)
        except ValueError:
            raise ConfigError(f"{scheme} sink: bad value for option {key!r}") from None
    return options


def sink_name(sink: Any) -> str:
    """A short, password-free name for logs and stats."""
    name = getattr(sink, "name", None)
    return name if isinstance(name, str) and name else type(sink).__name__
