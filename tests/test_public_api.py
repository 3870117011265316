"""The public surface is pinned: names users import, exactly as documented."""

import importlib
import subprocess
import sys

import pytest

import mlf_middleware
from mlf_middleware import MLFError
from mlf_middleware.exceptions import (
    ConfigError,
    InvalidRecord,
    SinkRejected,
    SinkUnavailable,
    UnsupportedValue,
)

PUBLIC = {
    "mlf_middleware": [
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
    ],
    "mlf_middleware.sinks": [
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
    ],
    "mlf_middleware.testing": [
        "FixedClock",
        "MemorySink",
        "flushed",
        "memory_recorder",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned(module):
    assert sorted(importlib.import_module(module).__all__) == sorted(PUBLIC[module])


@pytest.mark.parametrize("module", ["mlf_middleware", "mlf_middleware.testing"])
def test_every_exported_name_resolves(module):
    mod = importlib.import_module(module)

    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_every_error_derives_from_mlferror():
    for error in (ConfigError, InvalidRecord, SinkRejected, SinkUnavailable):
        assert issubclass(error, MLFError)
    assert issubclass(InvalidRecord, ValueError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(UnsupportedValue, TypeError)
    assert mlf_middleware.sinks.SinkRejected is SinkRejected


def test_core_imports_without_serving_frameworks():
    code = (
        "import sys, mlf_middleware, mlf_middleware.sinks;"
        "from mlf_middleware import capture, PredictionLoggingMiddleware;"
        "bad = [m for m in ('bentoml', 'ray', 'numpy', 'pandas') if m in sys.modules];"
        "print(','.join(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
