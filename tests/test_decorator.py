"""@capture: each kind of callable, its options, and a call that never breaks."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import types
from collections.abc import Iterator

import pytest

from mlf_middleware import recorder as recorder_module
from mlf_middleware._logging import RateLimitedLog
from mlf_middleware.decorator import (
    _call,
    _set_last_data_ids,
    _wrappers,
    capture,
    last_data_ids,
)
from mlf_middleware.exceptions import ConfigError, MLFError
from mlf_middleware.hashing import generate_hash_from_data
from mlf_middleware.recorder import Recorder
from mlf_middleware.sinks import MemorySink
from mlf_middleware.testing import FixedClock

ROW = {"age": 42, "city": "Oslo"}
ROW_ID = generate_hash_from_data(ROW)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder(MemorySink(), clock=FixedClock())
    yield recorder
    recorder.close(timeout=5)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch) -> None:
    """Each test starts with an empty warning rate limiter."""
    monkeypatch.setattr(_call, "warn", RateLimitedLog(_call.log))


@pytest.fixture
def clock(monkeypatch) -> None:
    """Make every measured call last exactly 250 ms."""
    readings = iter([10.0, 10.25] * 1000)
    fake_time = types.SimpleNamespace(perf_counter=lambda: next(readings))
    monkeypatch.setattr(_wrappers, "time", fake_time)


def written(recorder: Recorder) -> list:
    assert recorder.flush(5)
    return recorder.sinks[0].predictions


def one(recorder: Recorder):
    (record,) = written(recorder)
    return record


def raw(function) -> dict:
    return {"framework": "python", "function": function.__qualname__}


# --------------------------------------------------------------------------
# The exact record
# --------------------------------------------------------------------------


def test_call_records_one_exact_prediction(recorder, clock):
    def predict(features):
        return {"label": "yes", "probabilities": {"yes": 0.75, "no": 0.25}}

    wrapped = capture(predict, recorder=recorder, model_version_fqn="m:1")
    wrapped(dict(ROW))
    record = one(recorder)

    assert record.data_id == ROW_ID
    assert record.features == ROW
    assert record.prediction_data == {
        "value": "yes",
        "probabilities": {"yes": 0.75, "no": 0.25},
    }
    assert record.raw_data == raw(predict)
    assert record.latency_ms == 250.0
    assert record.model_version_fqn == "m:1"
    assert record.occurred_at.isoformat() == "2024-01-01T00:00:00+00:00"


def test_call_sets_last_data_ids(recorder):
    wrapped = capture(lambda features: 1, recorder=recorder)

    wrapped(ROW)

    assert last_data_ids() == [ROW_ID]


def test_last_data_ids_lists_every_row_in_order(recorder):
    rows = [{"a": 1}, {"a": 2}, {"a": 1}]
    wrapped = capture(lambda batch: [0, 1, 0], recorder=recorder)

    wrapped(rows)

    assert last_data_ids() == [generate_hash_from_data(row) for row in rows]
    assert [r.data_id for r in written(recorder)] == last_data_ids()


def test_last_data_ids_returns_a_copy():
    _set_last_data_ids(["a", "b"])

    ids = last_data_ids()
    ids.append("c")

    assert last_data_ids() == ["a", "b"]


def test_model_version_defaults_to_the_recorders():
    recorder = Recorder(MemorySink(), model_version_fqn="iris:7")
    try:
        capture(lambda features: 1, recorder=recorder)(ROW)

        assert one(recorder).model_version_fqn == "iris:7"
    finally:
        recorder.close(timeout=5)


def test_redact_replaces_the_value_but_not_the_id(recorder):
    wrapped = capture(lambda f: 1, recorder=recorder, redact=["city"])

    wrapped(dict(ROW))
    record = one(recorder)

    assert record.features == {"age": 42, "city": "[REDACTED]"}
    assert record.data_id == ROW_ID


# --------------------------------------------------------------------------
# Every kind of callable
# --------------------------------------------------------------------------


def test_plain_function(recorder):
    @capture(recorder=recorder)
    def predict(features):
        return 1

    assert predict(ROW) == 1
    assert one(recorder).raw_data == raw(predict)


def test_bare_decorator_uses_the_default_recorder(recorder, monkeypatch):
    @capture
    def predict(features):
        return 1

    monkeypatch.setattr(recorder_module, "_default", recorder)
    predict(ROW)

    assert one(recorder).features == ROW


def test_default_recorder_is_looked_up_at_call_time(monkeypatch):
    first = Recorder(MemorySink())
    second = Recorder(MemorySink())

    @capture()
    def predict(features):
        return 1

    try:
        monkeypatch.setattr(recorder_module, "_default", first)
        predict(ROW)
        monkeypatch.setattr(recorder_module, "_default", second)
        predict(ROW)

        assert len(written(first)) == 1
        assert len(written(second)) == 1
    finally:
        first.close(timeout=5)
        second.close(timeout=5)


def test_async_function(recorder):
    @capture(recorder=recorder)
    async def predict(features):
        await asyncio.sleep(0)
        return 2

    assert inspect.iscoroutinefunction(predict)
    assert asyncio.run(predict(ROW)) == 2
    assert one(recorder).prediction_data == {"value": 2}


def test_async_function_sets_last_data_ids_for_its_caller(recorder):
    @capture(recorder=recorder)
    async def predict(features):
        return 2

    async def caller():
        await predict(ROW)
        return last_data_ids()

    assert asyncio.run(caller()) == [ROW_ID]


class Model:
    """A model class with every kind of method decorated."""

    def __init__(self, recorder):
        self.recorder = recorder

    def predict(self, features):
        return features["age"] * 2

    async def apredict(self, features):
        return features["age"] * 3

    @classmethod
    def from_class(cls, features):
        return cls.__name__

    @staticmethod
    def static(features):
        return "static"


def make_model(recorder) -> type:
    """Decorate Model's methods with ``recorder`` in every order."""

    class Decorated(Model):
        predict = capture(Model.predict, recorder=recorder)
        apredict = capture(Model.apredict, recorder=recorder)

        @capture(recorder=recorder)
        @classmethod
        def class_outer(cls, features):
            return cls.__name__

        @classmethod
        @capture(recorder=recorder)
        def class_inner(cls, features):
            return cls.__name__

        @capture(recorder=recorder)
        @staticmethod
        def static_outer(features):
            return "static"

        @staticmethod
        @capture(recorder=recorder)
        def static_inner(features):
            return "static"

    return Decorated


def test_method_skips_self(recorder):
    model = make_model(recorder)(recorder)

    assert model.predict(ROW) == 84
    record = one(recorder)

    assert record.features == ROW
    assert record.prediction_data == {"value": 84}
    assert record.raw_data == {"framework": "python", "function": "Model.predict"}


def test_method_called_through_the_class(recorder):
    cls = make_model(recorder)
    model = cls(recorder)

    assert cls.predict(model, ROW) == 84
    assert one(recorder).features == ROW


def test_async_method(recorder):
    model = make_model(recorder)(recorder)

    assert inspect.iscoroutinefunction(model.apredict)
    assert asyncio.run(model.apredict(ROW)) == 126
    assert one(recorder).prediction_data == {"value": 126}


@pytest.mark.parametrize("name", ["class_outer", "class_inner"])
def test_classmethod_skips_cls(recorder, name):
    cls = make_model(recorder)

    assert getattr(cls, name)(ROW) == "Decorated"
    assert getattr(cls(recorder), name)(ROW) == "Decorated"
    records = written(recorder)

    assert [r.features for r in records] == [ROW, ROW]
    assert [r.prediction_data for r in records] == [{"value": "Decorated"}] * 2


@pytest.mark.parametrize("name", ["static_outer", "static_inner"])
def test_staticmethod(recorder, name):
    cls = make_model(recorder)

    assert getattr(cls, name)(ROW) == "static"
    assert getattr(cls(recorder), name)(ROW) == "static"
    records = written(recorder)

    assert [r.features for r in records] == [ROW, ROW]
    assert records[0].raw_data["function"].endswith(name)


def test_functools_partial(recorder):
    def predict(threshold, features):
        return features["age"] > threshold

    wrapped = capture(functools.partial(predict, 40), recorder=recorder)

    assert wrapped(ROW) is True
    record = one(recorder)

    assert record.features == ROW
    assert record.raw_data == raw(predict)


def test_callable_object(recorder):
    class Scorer:
        def __call__(self, features):
            return 0.5

    wrapped = capture(Scorer(), recorder=recorder)

    assert wrapped(ROW) == 0.5
    record = one(recorder)

    assert record.features == ROW
    assert record.raw_data == raw(Scorer)


def test_async_callable_object(recorder):
    class Scorer:
        async def __call__(self, features):
            return 0.5

    wrapped = capture(Scorer(), recorder=recorder)

    assert asyncio.run(wrapped(ROW)) == 0.5
    assert one(recorder).features == ROW


def test_bound_method(recorder):
    model = Model(recorder)

    wrapped = capture(model.predict, recorder=recorder)

    assert wrapped(ROW) == 84
    assert one(recorder).features == ROW


# --------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------


def test_generator_passes_through_unrecorded(recorder):
    def stream(features):
        yield from (1, 2)

    wrapped = capture(stream, recorder=recorder)
    _set_last_data_ids(["stale"])

    assert inspect.isgeneratorfunction(wrapped)
    assert list(wrapped(ROW)) == [1, 2]
    assert written(recorder) == []


def test_generator_with_outputs_records_after_the_last_item(recorder):
    def stream(features):
        yield "a"
        yield "b"
        return "done"

    def joined(items, rows):
        return [{"value": "".join(items)}]

    wrapped = capture(stream, recorder=recorder, outputs=joined)
    generator = wrapped(ROW)

    assert next(generator) == "a"
    assert recorder.flush(5)
    assert written(recorder) == []
    assert next(generator) == "b"
    with pytest.raises(StopIteration) as stop:
        next(generator)

    assert stop.value.value == "done"
    assert one(recorder).prediction_data == {"value": "ab"}
    assert last_data_ids() == [ROW_ID]


def test_generator_with_outputs_forwards_send_and_throw(recorder):
    def echo(features):
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "caught"

    wrapped = capture(echo, recorder=recorder, outputs=lambda i, r: [{"value": i}])
    generator = wrapped(ROW)

    assert next(generator) == "ready"
    assert generator.send("x") == "got x"
    assert generator.throw(KeyError("k")) == "caught"
    with pytest.raises(StopIteration):
        next(generator)

    assert one(recorder).prediction_data == {"value": ["ready", "got x", "caught"]}


def test_generator_closed_early_records_nothing(recorder):
    closed = []

    def stream(features):
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    wrapped = capture(stream, recorder=recorder, outputs=lambda i, r: [{"value": i}])
    generator = wrapped(ROW)
    next(generator)
    generator.close()

    assert closed == [True]
    assert written(recorder) == []


def test_async_generator_passes_through_unrecorded(recorder):
    async def stream(features):
        yield 1

    wrapped = capture(stream, recorder=recorder)

    async def consume():
        return [item async for item in wrapped(ROW)]

    assert inspect.isasyncgenfunction(wrapped)
    assert asyncio.run(consume()) == [1]
    assert written(recorder) == []


def test_async_generator_with_outputs_records_after_the_last_item(recorder):
    async def stream(features):
        for token in ("a", "b"):
            await asyncio.sleep(0)
            yield token

    wrapped = capture(
        stream, recorder=recorder, outputs=lambda items, rows: [{"value": items}]
    )

    async def consume():
        return [item async for item in wrapped(ROW)]

    assert inspect.isasyncgenfunction(wrapped)
    assert asyncio.run(consume()) == ["a", "b"]
    assert one(recorder).prediction_data == {"value": ["a", "b"]}


def test_async_generator_with_outputs_forwards_asend_and_athrow(recorder):
    async def echo(features):
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "caught"

    wrapped = capture(echo, recorder=recorder, outputs=lambda i, r: [{"value": i}])

    async def drive():
        generator = wrapped(ROW)
        seen = [await generator.asend(None), await generator.asend("x")]
        seen.append(await generator.athrow(KeyError("k")))
        with pytest.raises(StopAsyncIteration):
            await generator.asend(None)
        return seen

    assert asyncio.run(drive()) == ["ready", "got x", "caught"]
    assert one(recorder).prediction_data == {"value": ["ready", "got x", "caught"]}


def test_async_generator_failure_is_recorded_with_record_errors(recorder):
    async def stream(features):
        yield 1
        raise TimeoutError("model stalled")

    wrapped = capture(
        stream,
        recorder=recorder,
        outputs=lambda items, rows: [{"value": items}],
        record_errors=True,
    )

    async def consume():
        return [item async for item in wrapped(ROW)]

    with pytest.raises(TimeoutError):
        asyncio.run(consume())

    assert one(recorder).prediction_data == {"value": None, "error": "TimeoutError"}


# --------------------------------------------------------------------------
# What the wrapper keeps
# --------------------------------------------------------------------------


def annotated(features: dict[str, int], *, scale: float = 1.0) -> int:
    """Predict the answer."""
    return 42


async def annotated_async(features: dict[str, int]) -> int:
    """Predict asynchronously."""
    return 42


@pytest.mark.parametrize("target", [annotated, annotated_async])
def test_wrapper_keeps_name_doc_signature_annotations(target):
    wrapped = capture(target, recorder=Recorder(MemorySink(), enabled=False))

    assert wrapped.__name__ == target.__name__
    assert wrapped.__qualname__ == target.__qualname__
    assert wrapped.__doc__ == target.__doc__
    assert wrapped.__module__ == target.__module__
    assert wrapped.__annotations__ == target.__annotations__
    assert wrapped.__wrapped__ is target
    assert inspect.signature(wrapped) == inspect.signature(target)
    assert inspect.iscoroutinefunction(wrapped) == inspect.iscoroutinefunction(target)


def test_wrapper_returns_the_very_object(recorder):
    result = {"value": 1}

    wrapped = capture(lambda features: result, recorder=recorder)

    assert wrapped(ROW) is result


@pytest.mark.parametrize("record_errors", [False, True])
def test_wrapper_reraises_the_very_exception(recorder, record_errors):
    error = ZeroDivisionError("boom")

    def predict(features):
        raise error

    wrapped = capture(predict, recorder=recorder, record_errors=record_errors)
    with pytest.raises(ZeroDivisionError) as raised:
        wrapped(ROW)

    assert raised.value is error


def test_record_errors_records_the_exception_type(recorder, clock):
    @capture(recorder=recorder, record_errors=True)
    def predict(features):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        predict(ROW)
    record = one(recorder)

    assert record.data_id == ROW_ID
    assert record.prediction_data == {"value": None, "error": "ValueError"}
    assert record.latency_ms == 250.0
    assert last_data_ids() == [ROW_ID]


def test_async_record_errors_records_the_exception_type(recorder):
    @capture(recorder=recorder, record_errors=True)
    async def predict(features):
        raise KeyError("age")

    with pytest.raises(KeyError):
        asyncio.run(predict(ROW))

    assert one(recorder).prediction_data == {"value": None, "error": "KeyError"}


def test_errors_are_not_recorded_by_default(recorder):
    @capture(recorder=recorder)
    def predict(features):
        raise ValueError

    _set_last_data_ids(["stale"])
    with pytest.raises(ValueError, match=r"^$"):
        predict(ROW)

    assert written(recorder) == []
    assert last_data_ids() == []


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------


def test_id_hash_time_hashes_features_with_the_record_time(recorder):
    wrapped = capture(lambda f: 1, recorder=recorder, id="hash+time")

    wrapped(ROW)
    record = one(recorder)

    assert record.data_id == generate_hash_from_data(ROW, record.occurred_at)
    assert record.data_id != ROW_ID


def test_id_random_differs_per_call(recorder):
    wrapped = capture(lambda f: 1, recorder=recorder, id="random")

    wrapped(ROW)
    wrapped(ROW)
    first, second = written(recorder)

    assert first.data_id != second.data_id
    assert all(len(r.data_id) == 32 for r in (first, second))
    int(first.data_id, 16)


def test_id_callable_names_each_row(recorder):
    wrapped = capture(
        lambda f: 1, recorder=recorder, id=lambda row: f"user-{row['age']}"
    )

    wrapped(ROW)

    assert one(recorder).data_id == "user-42"
    assert last_data_ids() == ["user-42"]


@pytest.mark.parametrize(
    "make_id",
    [lambda row: "has space", lambda row: "", lambda row: 42, lambda row: "x" * 129],
)
def test_invalid_callable_id_falls_back_to_the_hash(recorder, caplog, make_id):
    wrapped = capture(lambda f: 1, recorder=recorder, id=make_id)

    with caplog.at_level(logging.WARNING, logger="mlf_middleware.decorator"):
        wrapped(ROW)

    assert one(recorder).data_id == ROW_ID
    assert "invalid id" in caplog.text


def test_raising_callable_id_falls_back_to_the_hash(recorder, caplog):
    def make_id(row):
        raise KeyError(row["city"])

    wrapped = capture(lambda f: 1, recorder=recorder, id=make_id)

    with caplog.at_level(logging.WARNING, logger="mlf_middleware.decorator"):
        wrapped(ROW)

    assert one(recorder).data_id == ROW_ID
    assert "id= callable raised KeyError" in caplog.text
    assert "Oslo" not in caplog.text


def test_exclude_args_leaves_arguments_out(recorder):
    @capture(recorder=recorder, exclude_args=["request_id"])
    def predict(features, request_id):
        return 1

    predict(ROW, "req-1")

    assert one(recorder).features == ROW


def test_several_data_arguments_make_one_row_by_name(recorder):
    @capture(recorder=recorder)
    def predict(age, city="Rome"):
        return 1

    predict(42, city="Oslo")

    assert one(recorder).features == ROW


def test_feature_names_and_class_names_label_arrays(recorder):
    np = pytest.importorskip("numpy")

    @capture(recorder=recorder, feature_names=["x", "y"], class_names=["no", "yes"])
    def predict(batch):
        return np.array([[0.25, 0.75], [0.5, 0.5]])

    predict(np.array([[1.0, 2.0], [3.0, 4.0]]))
    records = written(recorder)

    assert [r.features for r in records] == [{"x": 1, "y": 2}, {"x": 3, "y": 4}]
    assert [r.prediction_data for r in records] == [
        {"value": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
        {"value": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
    ]


def test_features_and_outputs_hooks_replace_the_rules(recorder):
    def features(request, *, user):
        return {"text": request["text"], "user": user}

    def outputs(result, rows):
        return [{"value": result["label"], "shap_values": {"text": 1.0}}]

    @capture(recorder=recorder, features=features, outputs=outputs)
    def predict(request, *, user):
        return {"label": "spam"}

    predict({"text": "hi", "ignored": 1}, user="u1")
    record = one(recorder)

    assert record.features == {"text": "hi", "user": "u1"}
    assert record.prediction_data == {"value": "spam", "shap_values": {"text": 1.0}}


BAD_OPTIONS = [
    ("recorder", {"recorder": "sqlite:///x.db"}),
    ("model_version_fqn", {"model_version_fqn": ""}),
    ("features", {"features": "age"}),
    ("outputs", {"outputs": 3}),
    ("id", {"id": "sha1"}),
    ("PredictionLoggingMiddleware", {"id": "header:x-request-id"}),
    ("feature_names", {"feature_names": "abc"}),
    ("feature_names", {"feature_names": ["a", "a"]}),
    ("feature_names", {"feature_names": [1, 2]}),
    ("class_names", {"class_names": []}),
    ("exclude_args", {"exclude_args": "request"}),
    ("redact", {"redact": "email"}),
    ("redact", {"redact": ["user..email"]}),
    ("record_errors", {"record_errors": "yes"}),
]


@pytest.mark.parametrize(
    ("option", "options"), BAD_OPTIONS, ids=[repr(o) for _, o in BAD_OPTIONS]
)
def test_bad_option_raises_config_error_naming_it(option, options):
    with pytest.raises(ConfigError, match=option) as error:
        capture(**options)

    assert isinstance(error.value, MLFError)
    assert isinstance(error.value, ValueError)


def test_bad_option_raises_also_in_the_bare_call_form():
    with pytest.raises(ConfigError, match="id"):
        capture(lambda x: x, id="nope")


def test_exclude_args_must_name_real_arguments():
    def predict(features, request_id):
        return 1

    with pytest.raises(ConfigError, match="exclude_args names 'request'"):
        capture(predict, exclude_args=["request"])


def test_exclude_args_may_name_keywords_of_a_catch_all():
    def predict(features, **context):
        return 1

    assert capture(predict, exclude_args=["request"]).__wrapped__ is predict


def test_capture_refuses_what_is_not_callable():
    with pytest.raises(ConfigError, match="capture needs a callable"):
        capture(42)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        capture(lambda x: x, None)


def test_class_names_accept_a_numpy_array(recorder):
    np = pytest.importorskip("numpy")

    @capture(recorder=recorder, class_names=np.array([3, 5]))
    def predict(features):
        return np.array([0.4, 0.6])

    predict(ROW)

    assert one(recorder).prediction_data == {
        "value": 5,
        "probabilities": {"3": 0.4, "5": 0.6},
    }


# --------------------------------------------------------------------------
# Capture never raises and never changes serving
# --------------------------------------------------------------------------


def test_disabled_recorder_skips_all_work(recorder):
    calls = []
    disabled = Recorder(MemorySink(), enabled=False)

    def features(x):
        calls.append("features")
        return x

    wrapped = capture(lambda x: 7, recorder=disabled, features=features)

    assert wrapped(ROW) == 7
    assert calls == []
    assert written(disabled) == []


def test_closed_recorder_passes_calls_through(recorder):
    wrapped = capture(lambda x: 7, recorder=recorder)
    recorder.close(timeout=5)

    assert wrapped(ROW) == 7
    assert recorder.sinks[0].predictions == []


@pytest.mark.parametrize(
    "options",
    [
        {"features": lambda x: 1 / 0},
        {"outputs": lambda result, rows: 1 / 0},
        {"outputs": lambda result, rows: "not rows"},
        {"features": lambda x: {"secret": x["city"]}, "outputs": lambda r, rows: [5]},
    ],
    ids=["features raises", "outputs raises", "outputs bad", "outputs items bad"],
)
def test_failing_hooks_leave_the_call_alone(recorder, caplog, options):
    wrapped = capture(lambda x: "served", recorder=recorder, **options)
    _set_last_data_ids(["stale"])

    with caplog.at_level(logging.WARNING, logger="mlf_middleware.decorator"):
        assert wrapped(dict(ROW)) == "served"

    assert written(recorder) == []
    assert last_data_ids() == []
    assert "capture of" in caplog.text
    assert "Oslo" not in caplog.text


def test_unpaired_outputs_record_nothing_and_warn(recorder, caplog):
    wrapped = capture(lambda batch: [1, 2, 3], recorder=recorder)

    with caplog.at_level(logging.WARNING, logger="mlf_middleware.decorator"):
        assert wrapped([{"a": "secret-1"}, {"a": "secret-2"}]) == [1, 2, 3]

    assert written(recorder) == []
    assert "does not pair with its 2 rows" in caplog.text
    assert "secret" not in caplog.text


def test_value_the_recorder_cannot_encode_is_dropped_quietly(recorder):
    wrapped = capture(lambda features: 1, recorder=recorder)

    assert wrapped({"blob": object()}) == 1
    assert written(recorder) == []
    assert last_data_ids() == []


def test_broken_default_recorder_leaves_the_call_alone(monkeypatch, caplog):
    def broken():
        raise ConfigError("MLF_SINK: unknown scheme")

    monkeypatch.setattr(_call, "get_recorder", broken)

    with caplog.at_level(logging.WARNING, logger="mlf_middleware.decorator"):
        assert capture(lambda x: 3)(ROW) == 3

    assert "MLF_SINK: unknown scheme" in caplog.text


def test_warnings_are_rate_limited(recorder, caplog):
    wrapped = capture(lambda x: 1, recorder=recorder, features=lambda x: 1 / 0)

    with caplog.at_level(logging.WARNING, logger="mlf_middleware.decorator"):
        for _ in range(50):
            wrapped(ROW)

    assert len(caplog.records) == 1


# --------------------------------------------------------------------------
# OpenTelemetry
# --------------------------------------------------------------------------


def test_no_trace_ids_without_opentelemetry(recorder, monkeypatch):
    monkeypatch.delitem(sys.modules, "opentelemetry.trace", raising=False)

    capture(lambda x: 1, recorder=recorder)(ROW)

    assert set(one(recorder).raw_data) == {"framework", "function"}


def test_active_span_adds_trace_and_span_ids(recorder):
    trace = pytest.importorskip("opentelemetry.trace")
    context = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
    )

    with trace.use_span(trace.NonRecordingSpan(context)):
        capture(lambda x: 1, recorder=recorder)(ROW)
    record = one(recorder)

    assert record.raw_data["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert record.raw_data["span_id"] == "00f067aa0ba902b7"


def test_no_trace_ids_outside_a_span(recorder):
    pytest.importorskip("opentelemetry.trace")

    capture(lambda x: 1, recorder=recorder)(ROW)

    assert set(one(recorder).raw_data) == {"framework", "function"}


def test_unpaired_outputs_are_counted_as_dropped():
    from mlf_middleware import Recorder
    from mlf_middleware.sinks import MemorySink

    rec = Recorder(MemorySink())

    @capture(recorder=rec)
    def predict(rows):
        return [1, 2, 3]  # three outputs for two rows

    assert predict([{"a": 1}, {"a": 2}]) == [1, 2, 3]
    stats = rec.close(5)

    assert stats["dropped_by_reason"] == {"unpaired": 2}
    assert stats["dropped"] == 2
