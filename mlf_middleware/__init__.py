"""mlf-middleware: record every inference of a model server, in the background."""

from __future__ import annotations

from typing import Any

from .exceptions import MLFError
from .hashing import generate_hash_from_data
from .recorder import (
    Recorder,
    configure,
    get_client,
    get_recorder,
    log_actual,
    log_actuals,
    log_predictions,
)
from .records import Actual, Prediction

__all__ = [
    "Actual",
    "MLFError",
    "Prediction",
    "PredictionLoggingMiddleware",
    "Recorder",
    "actuals_app",
    "capture",
    "configure",
    "generate_hash_from_data",
    "get_client",
    "get_recorder",
    "last_data_ids",
    "log_actual",
    "log_actuals",
    "log_predictions",
]

__version__ = "0.1.0"

# The edges import starlette and wrapt; load them on first use so that
# `import mlf_middleware` stays cheap for code that only logs records.
_EDGES = {
    "capture": "decorator",
    "last_data_ids": "decorator",
    "PredictionLoggingMiddleware": "middleware",
    "actuals_app": "actuals",
}


def __getattr__(name: str) -> Any:
    if name in _EDGES:
        import importlib

        module = importlib.import_module(f"{__name__}.{_EDGES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
