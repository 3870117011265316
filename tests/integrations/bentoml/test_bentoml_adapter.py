"""capture_service and the middleware on a BentoML service, in-process.

BentoML builds a service's ASGI app once per process (a second build
clashes in its metrics registry), so one app serves every test here: a
service with a batchable API, a plain one, an async one taking ``ctx``, a
failing one, and one left to PredictionLoggingMiddleware.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import re
import threading
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

with warnings.catch_warnings():  # BentoML's own imports warn (pathspec)
    warnings.simplefilter("ignore", DeprecationWarning)
    bentoml = pytest.importorskip("bentoml")
    import numpy as np

    from mlf_middleware.integrations.bentoml import capture_service, request_rows
    from mlf_middleware.integrations.bentoml._service import _RecorderSource

from starlette.testclient import TestClient

from mlf_middleware import PredictionLoggingMiddleware, Recorder
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.hashing import generate_hash_from_data
from mlf_middleware.records import Prediction
from mlf_middleware.sinks import MemorySink

pytestmark = [
    pytest.mark.bentoml,
    # BentoML 1.4 itself trips these under warnings-as-errors.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:_bentoml_sdk.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:_bentoml_impl.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:bentoml.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pathspec.*"),
]

BENTOML_ERROR = {
    "error": "An unexpected error has occurred, please check the server log."
}
HEX32 = re.compile(r"[0-9a-f]{32}")


def _define_service() -> Any:
    """A fresh, undecorated service class (defined at call time)."""

    @bentoml.service
    class Adder:
        @bentoml.api(batchable=True, max_batch_size=10)
        def predict(self, rows: np.ndarray) -> np.ndarray:
            return rows[:, 0] * 100 + rows[:, 1]

        @bentoml.api
        def score(self, a: float, b: float) -> float:
            return a + b

        @bentoml.api
        async def double(self, a: float, ctx: bentoml.Context) -> float:
            ctx.response.headers["x-seen"] = "1"
            return a * 2

        @bentoml.api
        def boom(self, a: float) -> float:
            raise ValueError("always fails")

        @bentoml.api
        def rows(self, items: list[dict[str, float]]) -> list[float]:
            return [item["x"] * 2 for item in items]

    return Adder


def _slow_recorder() -> Recorder:
    """A memory recorder that writes only when flushed (or at shutdown)."""
    return Recorder(MemorySink(), max_delay=60.0, batch_size=10_000)


class Recorded:
    """A recorder and the records it wrote since the last ``new()``."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.seen = 0

    @property
    def all(self) -> list[Prediction]:
        return list(self.recorder.sinks[0].records)

    def new(self) -> list[Prediction]:
        """Flush; return the records written since the previous call."""
        assert self.recorder.flush(5)
        records = self.all
        fresh, self.seen = records[self.seen :], len(records)
        return fresh


@pytest.fixture(scope="module")
def recorders() -> Iterator[tuple[Recorded, Recorded]]:
    """The recorders of capture_service and of the middleware."""
    decorated, middleware = _slow_recorder(), _slow_recorder()
    yield Recorded(decorated), Recorded(middleware)
    for recorder in (decorated, middleware):
        recorder.close(5)


@pytest.fixture(scope="module")
def app(recorders: tuple[Recorded, Recorded]) -> Any:
    """The one app: a captured service, with the middleware on ``/rows``."""
    decorated, middleware = recorders
    svc = capture_service(
        _define_service(),
        recorder=decorated.recorder,
        apis=["predict", "score", "double", "boom"],
        model_version_fqn="adder:1",
        feature_names=["a", "b"],
        record_errors=True,
    )
    svc.add_asgi_middleware(
        PredictionLoggingMiddleware,
        recorder=middleware.recorder,
        paths=["/rows"],
        features=request_rows(),
    )
    return svc.to_asgi()


@pytest.fixture(scope="module")
def shutdown_records(
    app: Any, recorders: tuple[Recorded, Recorded]
) -> list[Prediction]:
    """Run one full lifespan with one call; return what its shutdown wrote.

    The recorders write only when flushed, and nothing flushes them here
    but the service's shutdown hook. This lifespan avoids the batchable API:
    BentoML's dispatcher stays bound to the first event loop it runs on.
    """
    decorated, _ = recorders
    with TestClient(app) as client:
        client.post("/score", json={"a": 20, "b": 1})
    written = decorated.all
    decorated.seen = len(written)
    return written


@pytest.fixture(scope="module")
def client(app: Any, shutdown_records: list[Prediction]) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def recorded(recorders: tuple[Recorded, Recorded], client: TestClient) -> Recorded:
    decorated, _ = recorders
    decorated.new()
    return decorated


@pytest.fixture
def middleware_recorded(
    recorders: tuple[Recorded, Recorded], client: TestClient
) -> Recorded:
    _, middleware = recorders
    middleware.new()
    return middleware


# --------------------------------------------------------------------------
# Decoration
# --------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["bare", "called", "one call"])
def test_returns_the_same_service(form: str) -> None:
    svc = _define_service()

    if form == "bare":
        result = capture_service(svc)
    elif form == "called":
        result = capture_service(recorder=Recorder(MemorySink()))(svc)
    else:
        result = capture_service(svc, sink="memory://")

    assert result is svc


def test_openapi_schema_and_signatures_unchanged() -> None:
    svc = _define_service()
    spec, schema = svc.openapi_spec.asdict(), svc.schema()
    functions = {name: api.func for name, api in svc.apis.items()}

    capture_service(svc, sink="memory://")

    assert svc.openapi_spec.asdict() == spec
    assert svc.schema() == schema
    for name, api in svc.apis.items():
        assert api.func is not functions[name]
        assert inspect.signature(api.func) == inspect.signature(functions[name])
        assert api.func.__name__ == name
    assert inspect.iscoroutinefunction(svc.apis["double"].func)
    assert not inspect.iscoroutinefunction(svc.apis["score"].func)


def test_refuses_a_class_not_yet_a_service() -> None:
    class Plain:
        pass

    with pytest.raises(ConfigError, match=r"above @bentoml\.service"):
        capture_service(Plain)


def test_refuses_sink_and_recorder_together() -> None:
    with pytest.raises(ConfigError, match="not both"):
        capture_service(sink="memory://", recorder=Recorder(MemorySink()))


def test_refuses_an_unknown_api() -> None:
    with pytest.raises(ConfigError, match="no API 'nope'"):
        capture_service(_define_service(), apis=["score", "nope"])


def test_refuses_capturing_an_api_twice() -> None:
    svc = capture_service(_define_service(), apis=["score"])

    capture_service(svc, apis=["boom"])
    with pytest.raises(ConfigError, match="'score' of service 'Adder'"):
        capture_service(svc, apis=["score"])


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"id": "header:x-id"}, "id="),
        ({"record_errors": "yes"}, "record_errors"),
        ({"apis": "score"}, "apis"),
        ({"apis": ["score", "score"]}, "apis"),
        ({"sink": ""}, "sink"),
        ({"sink": "nope://x"}, "scheme"),
        ({"sink": MemorySink()}, "recorder=Recorder"),
    ],
)
def test_bad_option_raises_before_any_service(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        capture_service(**options)


def test_sink_configuration_pickles_without_a_recorder(tmp_path: Any) -> None:
    source = _RecorderSource.of(sink="sqlite:///rel.db", recorder=None)
    source.get()

    copy = pickle.loads(pickle.dumps(source))

    assert copy._sinks == (f"sqlite:///{tmp_path / 'rel.db'}",)
    assert copy._built is None
    source.get().close(5)


def test_direct_call_feeds_hook_without_self() -> None:
    seen: list[tuple[Any, ...]] = []

    def features(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append((args, kwargs))
        return {"sum_in": kwargs["a"] + kwargs["b"]}

    recorder = Recorder(MemorySink())
    svc = capture_service(
        _define_service(), recorder=recorder, apis=["score"], features=features
    )

    result = svc().score(a=1.0, b=2.0)

    assert recorder.flush(5)
    (record,) = recorder.sinks[0].records
    assert result == 3.0
    assert seen == [((), {"a": 1.0, "b": 2.0})]
    assert record.features == {"sum_in": 3.0}
    assert record.raw_data == {
        "framework": "bentoml",
        "service": "Adder",
        "api": "score",
    }
    recorder.close(5)


def test_bento_tag_recorded_when_served_from_a_bento() -> None:
    recorder = Recorder(MemorySink())
    svc = capture_service(_define_service(), recorder=recorder, apis=["score"])
    svc.bento = SimpleNamespace(tag=bentoml.Tag("adder", "v7"))  # as on load

    svc().score(a=1.0, b=2.0)

    assert recorder.flush(5)
    (record,) = recorder.sinks[0].records
    assert record.raw_data["bento"] == "adder:v7"
    recorder.close(5)


def test_startup_survives_a_recorder_that_cannot_be_built(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = capture_service(_define_service(), sink="sqlite:///x.db?timeout=-1")
    instance = svc()

    asyncio.run(instance._mlf_middleware_open())

    assert "capture_service could not build the recorder" in caplog.text
    assert instance.score(a=1.0, b=2.0) == 3.0


# --------------------------------------------------------------------------
# Serving, in-process
# --------------------------------------------------------------------------


def test_shutdown_hook_flushes_the_recorder(
    shutdown_records: list[Prediction],
) -> None:
    assert [(r.features, r.prediction_data) for r in shutdown_records] == [
        ({"a": 20.0, "b": 1.0}, {"value": 21.0})
    ]


def test_plain_call_records_its_request(client: TestClient, recorded: Recorded) -> None:
    answer = client.post("/score", json={"a": 1.5, "b": 2})

    (record,) = recorded.new()
    request_id = answer.headers["x-bentoml-request-id"]
    assert answer.json() == 3.5
    assert record.features == {"a": 1.5, "b": 2.0}
    assert record.prediction_data == {"value": 3.5}
    assert record.data_id == generate_hash_from_data({"a": 1.5, "b": 2})
    assert record.model_version_fqn == "adder:1"
    assert record.latency_ms > 0
    trace_id = record.raw_data.pop("trace_id")
    assert HEX32.fullmatch(trace_id)
    assert record.raw_data == {
        "framework": "bentoml",
        "service": "Adder",
        "api": "score",
        "request_id": request_id,
        "span_id": request_id,
    }


def test_concurrent_batched_requests_record_each_row(
    client: TestClient, recorded: Recorded
) -> None:
    requests = [
        [[10 * request + row, row] for row in range(size)]
        for request, size in enumerate((7, 7, 6))
    ]
    answers: dict[int, Any] = {}

    def send(index: int) -> None:
        answers[index] = client.post("/predict", json={"rows": requests[index]})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    records = recorded.new()
    assert [answers[i].json() for i in range(3)] == [
        [100 * a + b for a, b in rows] for rows in requests
    ]
    assert len(records) == 20
    assert sorted((r.features["a"], r.features["b"]) for r in records) == sorted(
        (a, b) for rows in requests for a, b in rows
    )
    for record in records:
        a, b = record.features["a"], record.features["b"]
        assert record.prediction_data == {"value": 100 * a + b}
        assert record.raw_data == {
            "framework": "bentoml",
            "service": "Adder",
            "api": "predict",
            "batched": True,
        }


def test_failing_call_recorded_and_answered_as_usual(
    client: TestClient, recorded: Recorded
) -> None:
    answer = client.post("/boom", json={"a": 4})

    (record,) = recorded.new()
    assert answer.status_code == 500
    assert answer.json() == BENTOML_ERROR
    assert record.features == {"a": 4.0}
    assert record.prediction_data == {"value": None, "error": "ValueError"}
    assert record.raw_data["request_id"] == answer.headers["x-bentoml-request-id"]


def test_ctx_argument_is_not_a_feature(client: TestClient, recorded: Recorded) -> None:
    answer = client.post("/double", json={"a": 3})

    (record,) = recorded.new()
    assert answer.json() == 6.0
    assert answer.headers["x-seen"] == "1"
    assert record.features == {"a": 3.0}
    assert record.prediction_data == {"value": 6.0}
    assert record.raw_data["api"] == "double"


def test_api_left_out_is_not_captured(
    client: TestClient, recorded: Recorded, middleware_recorded: Recorded
) -> None:
    client.post("/rows", json={"items": [{"x": 1}]})

    assert recorded.new() == []
    assert len(middleware_recorded.new()) == 1


def test_middleware_records_rows_of_a_bentoml_body(
    client: TestClient, middleware_recorded: Recorded
) -> None:
    answer = client.post("/rows", json={"items": [{"x": 1}, {"x": 2.5}]})

    records = middleware_recorded.new()
    assert answer.json() == [2.0, 5.0]
    assert [(r.features, r.prediction_data) for r in records] == [
        ({"x": 1}, {"value": 2.0}),
        ({"x": 2.5}, {"value": 5.0}),
    ]
    assert answer.headers["x-data-id"] == ",".join(r.data_id for r in records)
    assert records[0].data_id == generate_hash_from_data({"x": 1})
    assert records[0].raw_data["path"] == "/rows"
