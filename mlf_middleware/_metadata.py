"""Metadata the edges stamp on records: names and the active trace."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["callable_name", "trace_ids", "with_trace"]


def trace_ids() -> tuple[str, str] | None:
    """Return the active OpenTelemetry ``(trace_id, span_id)`` as hex, or None.

    OpenTelemetry is never imported here: if the application has not
    imported ``opentelemetry.trace``, no span can be active, so looking in
    ``sys.modules`` costs a dict lookup and no import.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None

    try:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")
    except Exception:  # a broken tracer must not break capture
        return None


def with_trace(raw_data: dict[str, Any]) -> dict[str, Any]:
    """Add ``trace_id`` and ``span_id`` to ``raw_data`` when a span is active."""
    ids = trace_ids()
    if ids is not None:
        raw_data["trace_id"], raw_data["span_id"] = ids

    return raw_data


def callable_name(func: Any) -> str:
    """The qualified name of a function, method, partial or callable object."""
    inner = getattr(func, "__func__", None)  # classmethod, staticmethod
    if inner is not None:
        func = inner
    partial_of = getattr(func, "func", None)  # functools.partial
    if partial_of is not None and not hasattr(func, "__qualname__"):
        return callable_name(partial_of)

    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        return name

    return type(func).__qualname__
