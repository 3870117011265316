"""The Ray Serve adapter without a Ray instance: shells, plans, pickling.

Serve's replica and request context are stood in for by two small modules
put in ``sys.modules`` (the adapter only ever looks there); the tests marked
``ray`` check the same behaviour against a real Ray Serve.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
import subprocess
import sys
import threading
import types
from contextvars import ContextVar

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

from mlf_middleware import PredictionLoggingMiddleware, last_data_ids
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.hashing import generate_hash_from_data
from mlf_middleware.integrations.ray_serve import (
    ServeRecorder,
    _capture,
    _recorder,
    capture_deployment,
)
from mlf_middleware.recorder import Recorder
from mlf_middleware.sinks import MemorySink, SQLiteSink

REPLICA = {"application": "shop", "deployment": "Model", "replica_id": "r1"}


@pytest.fixture
def recorder():
    recorder = Recorder(MemorySink(), max_delay=0.01)
    yield recorder
    recorder.close(timeout=5)


def written(recorder: Recorder) -> list:
    assert recorder.flush(5)
    return recorder.sinks[0].predictions


def request(body: bytes, content_type: str | None = "application/json") -> Request:
    """A Starlette request with ``body``, as Serve hands one to __call__."""
    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": headers,
    }
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


@pytest.fixture
def replica(monkeypatch):
    """Stand in for a Serve replica: its context and the request contexts."""
    context = types.SimpleNamespace(
        app_name="shop",
        deployment="Model",
        replica_id=types.SimpleNamespace(unique_id="r1"),
    )
    serve = types.SimpleNamespace(get_replica_context=lambda: context)
    requests: ContextVar = ContextVar("request", default=None)
    batch: ContextVar = ContextVar("batch", default=None)
    serve_context = types.SimpleNamespace(
        _serve_request_context=requests, _serve_batch_request_context=batch
    )
    monkeypatch.setitem(sys.modules, "ray.serve", serve)
    monkeypatch.setitem(sys.modules, "ray.serve.context", serve_context)

    def in_request(request_id: str) -> None:
        requests.set(types.SimpleNamespace(request_id=request_id))

    def in_batch(*request_ids: str) -> None:
        batch.set([types.SimpleNamespace(request_id=rid) for rid in request_ids])

    return types.SimpleNamespace(in_request=in_request, in_batch=in_batch)


# --------------------------------------------------------------------------
# Methods and functions
# --------------------------------------------------------------------------


def test_async_method_records_its_row_and_output(recorder):
    @capture_deployment(recorder=recorder, methods=["predict"])
    class Model:
        async def predict(self, features: dict) -> dict:
            return {"label": "yes", "probabilities": {"yes": 0.75, "no": 0.25}}

    result = asyncio.run(Model().predict({"age": 42}))

    assert result == {"label": "yes", "probabilities": {"yes": 0.75, "no": 0.25}}
    (record,) = written(recorder)
    assert record.features == {"age": 42}
    assert record.prediction_data == {
        "value": "yes",
        "probabilities": {"yes": 0.75, "no": 0.25},
    }
    assert record.data_id == generate_hash_from_data({"age": 42})
    assert record.raw_data == {
        "framework": "python",
        "function": "test_async_method_records_its_row_and_output.<locals>."
        "Model.predict",
    }


def test_sync_call_method_records_and_sets_last_ids(recorder):
    @capture_deployment(recorder=recorder)
    class Model:
        def __call__(self, features: dict) -> int:
            return features["x"] * 2

    assert Model()({"x": 21}) == 42

    (record,) = written(recorder)
    assert (record.features, record.prediction_data) == ({"x": 21}, {"value": 42})
    assert last_data_ids() == [generate_hash_from_data({"x": 21})]


def test_wrapped_methods_keep_kind_name_and_signature(recorder):
    class Model:
        async def __call__(self, request: Request) -> dict:
            """Predict."""
            return {}

        def stream(self, n: int):
            yield from range(n)

        async def astream(self, n: int):
            for i in range(n):
                yield i

    original = inspect.signature(Model.__call__)
    methods = ["__call__", "stream", "astream"]
    capture_deployment(Model, recorder=recorder, methods=methods)

    assert inspect.iscoroutinefunction(Model.__call__)
    assert inspect.isgeneratorfunction(Model.stream)
    assert inspect.isasyncgenfunction(Model.astream)
    assert Model.__call__.__name__ == "__call__"
    assert Model.__call__.__doc__ == "Predict."
    assert inspect.signature(Model.__call__) == original


def test_generators_pass_their_items_through(recorder):
    @capture_deployment(recorder=recorder, methods=["stream", "astream"])
    class Model:
        def stream(self, n: int):
            yield from range(n)

        async def astream(self, n: int):
            for i in range(n):
                yield i

    async def collect() -> list:
        return [item async for item in Model().astream(3)]

    assert list(Model().stream(3)) == [0, 1, 2]
    assert asyncio.run(collect()) == [0, 1, 2]
    assert written(recorder) == []  # streams record only with outputs=


def test_sink_option_builds_a_serve_recorder(tmp_path):
    @capture_deployment(sink=f"sqlite:///{tmp_path}/p.db")
    class Model:
        def __call__(self, features: dict) -> int:
            return 1

    Model()({"x": 1})

    assert _recorder.flush_all(5)  # every ServeRecorder used in this process
    (record,) = SQLiteSink(tmp_path / "p.db").read_records()
    assert record.features == {"x": 1}


def test_function_deployment_records_and_flushes_at_shutdown(recorder):
    @capture_deployment(recorder=recorder)
    async def double(features: dict) -> int:
        return features["x"] * 2

    assert asyncio.run(double({"x": 2})) == 4
    assert double.__del__ is _capture.flush_in_replica
    (record,) = written(recorder)
    assert record.prediction_data == {"value": 4}


def test_exceptions_pass_through_unchanged(recorder):
    @capture_deployment(recorder=recorder, record_errors=True)
    class Model:
        async def __call__(self, features: dict) -> int:
            raise KeyError("x")

    with pytest.raises(KeyError, match="x"):
        asyncio.run(Model()({"y": 1}))

    (record,) = written(recorder)
    assert record.prediction_data == {"value": None, "error": "KeyError"}


def test_disabled_recorder_records_nothing():
    recorder = Recorder(MemorySink(), enabled=False)

    @capture_deployment(recorder=recorder)
    class Model:
        async def __call__(self, request: Request) -> dict:
            return {"prediction": 1}

    assert asyncio.run(Model()(request(b'{"x": 1}'))) == {"prediction": 1}
    assert recorder.sinks[0].records == []


# --------------------------------------------------------------------------
# HTTP requests
# --------------------------------------------------------------------------


def test_request_body_gives_rows_and_stays_readable(recorder):
    seen = []

    @capture_deployment(recorder=recorder)
    class Model:
        async def __call__(self, request: Request) -> dict:
            body = await request.json()
            seen.append(body)
            return {"predictions": [row["x"] * 2 for row in body["instances"]]}

    body = b'{"instances": [{"x": 1}, {"x": 2}]}'
    result = asyncio.run(Model()(request(body)))

    assert result == {"predictions": [2, 4]}
    assert seen == [{"instances": [{"x": 1}, {"x": 2}]}]
    records = written(recorder)
    assert [r.features for r in records] == [{"x": 1}, {"x": 2}]
    assert [r.prediction_data for r in records] == [{"value": 2}, {"value": 4}]


def test_json_response_body_gives_outputs(recorder):
    @capture_deployment(recorder=recorder)
    class Model:
        async def __call__(self, request: Request) -> JSONResponse:
            return JSONResponse({"prediction": "cat"}, headers={"x-model": "v1"})

    response = asyncio.run(Model()(request(b'{"pixels": 3}')))

    assert response.headers["x-model"] == "v1"
    (record,) = written(recorder)
    assert (record.features, record.prediction_data) == (
        {"pixels": 3},
        {"value": "cat"},
    )


def test_body_hooks_see_parsed_json(recorder):
    @capture_deployment(
        recorder=recorder,
        features=lambda body: body["payload"],
        outputs=lambda body, rows: [{"value": body["answer"]}],
    )
    class Model:
        async def __call__(self, request: Request) -> dict:
            return {"answer": 7}

    asyncio.run(Model()(request(b'{"payload": {"q": "why"}}')))

    (record,) = written(recorder)
    assert (record.features, record.prediction_data) == ({"q": "why"}, {"value": 7})


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"plain words", "text/plain"), (b"{not json", "application/json"), (b"", None)],
)
def test_unreadable_body_is_served_unrecorded(recorder, body, content_type):
    @capture_deployment(recorder=recorder)
    class Model:
        async def __call__(self, request: Request) -> str:
            return (await request.body()).decode()

    assert asyncio.run(Model()(request(body, content_type))) == body.decode()
    assert written(recorder) == []


def test_non_json_response_is_not_recorded(recorder, caplog):
    @capture_deployment(recorder=recorder)
    class Model:
        async def __call__(self, request: Request) -> PlainTextResponse:
            return PlainTextResponse("cat")

    response = asyncio.run(Model()(request(b'{"x": 1}')))

    assert response.body == b"cat"
    assert written(recorder) == []
    assert "cat" not in caplog.text


def test_sync_method_given_a_request_is_served_unrecorded(recorder, caplog):
    @capture_deployment(recorder=recorder)
    class Model:
        def __call__(self, request: Request) -> str:
            return "ok"

    with caplog.at_level(logging.WARNING):
        assert Model()(request(b'{"x": 1}')) == "ok"

    assert written(recorder) == []
    assert "make it async def" in caplog.text


# --------------------------------------------------------------------------
# Replica metadata and batches (Serve's contexts stood in for)
# --------------------------------------------------------------------------


def test_records_carry_replica_and_request_metadata(recorder, replica):
    @capture_deployment(recorder=recorder)
    class Model:
        async def __call__(self, request: Request) -> int:
            return 1

    async def serve_one() -> None:
        replica.in_request("req-7")
        await Model()(request(b'{"x": 1}'))

    asyncio.run(serve_one())

    (record,) = written(recorder)
    assert record.raw_data == {
        "framework": "ray_serve",
        "function": "test_records_carry_replica_and_request_metadata.<locals>."
        "Model.__call__",
        **REPLICA,
        "request_id": "req-7",
    }


def test_batch_of_requests_gives_each_its_own_record(recorder, replica):
    @capture_deployment(recorder=recorder, methods=["batch"])
    class Model:
        async def batch(self, requests: list[Request]) -> list[dict]:
            bodies = [await r.json() for r in requests]
            return [{"prediction": body["x"] * 10} for body in bodies]

    async def serve_batch() -> list:
        replica.in_request("first-of-batch")  # Serve's own context: one request
        replica.in_batch("a", "b", "c", "d")
        requests = [request(b'{"x": %d}' % i) for i in range(4)]
        return await Model().batch(requests)

    results = asyncio.run(serve_batch())

    assert results == [{"prediction": i * 10} for i in range(4)]
    records = written(recorder)
    assert [r.features for r in records] == [{"x": i} for i in range(4)]
    assert [r.prediction_data for r in records] == [
        {"value": i * 10} for i in range(4)
    ]
    assert [r.raw_data["request_id"] for r in records] == ["a", "b", "c", "d"]


def test_batch_of_values_pairs_outputs_request_by_request(recorder, replica):
    @capture_deployment(recorder=recorder, methods=["batch"])
    class Model:
        async def batch(self, inputs: list) -> list:
            return [[row["x"] for row in rows] for rows in inputs]

    async def serve_batch() -> list:
        replica.in_batch("a", "b")
        return await Model().batch([[{"x": 1}, {"x": 2}], [{"x": 3}]])

    assert asyncio.run(serve_batch()) == [[1, 2], [3]]
    records = written(recorder)
    assert [(r.features, r.prediction_data["value"]) for r in records] == [
        ({"x": 1}, 1),
        ({"x": 2}, 2),
        ({"x": 3}, 3),
    ]
    assert [r.raw_data["request_id"] for r in records] == ["a", "a", "b"]


def test_batch_result_of_wrong_length_records_nothing(recorder, replica):
    @capture_deployment(recorder=recorder, methods=["batch"])
    class Model:
        async def batch(self, inputs: list) -> list:
            return [1]

    async def serve_batch() -> list:
        replica.in_batch("a", "b")
        return await Model().batch([{"x": 1}, {"x": 2}])

    assert asyncio.run(serve_batch()) == [1]
    assert written(recorder) == []


# Garbage collection calls an async __del__ and drops its coroutine: that is
# Python's doing with any such class, outside Serve.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_flush_hook_runs_own_del_first_then_flushes(replica, tmp_path):
    events = []
    serve_recorder = ServeRecorder(f"sqlite:///{tmp_path}/p.db", max_delay=60)

    @capture_deployment(recorder=serve_recorder)
    class Model:
        async def __call__(self, features: dict) -> int:
            return 1

        async def __del__(self) -> None:
            events.append("user")

    model = Model()
    asyncio.run(model({"x": 1}))
    asyncio.run(Model.__del__(model))

    assert events == ["user"]
    assert len(SQLiteSink(tmp_path / "p.db").read_records()) == 1
    serve_recorder.close(timeout=5)


def test_decorated_method_hooks_its_class_in_a_replica(recorder, replica):
    class Model:
        @capture_deployment(recorder=recorder)
        async def predict(self, features: dict) -> int:
            return 1

    assert "__del__" not in Model.__dict__
    asyncio.run(Model().predict({"x": 1}))

    assert Model.__dict__[_capture._HOOKED] is True
    assert "__del__" in Model.__dict__


# --------------------------------------------------------------------------
# ServeRecorder: configuration that travels
# --------------------------------------------------------------------------


def test_serve_recorder_pickles_without_records_or_threads(tmp_path):
    serve_recorder = ServeRecorder(f"sqlite:///{tmp_path}/p.db", max_delay=60)
    serve_recorder.record({"secret": "marker-5e1f"}, {"value": 1})
    assert serve_recorder.stats()["queue_size"] == 1

    threads = threading.active_count()
    data = pickle.dumps(serve_recorder)
    copy = pickle.loads(data)

    assert b"marker-5e1f" not in data
    assert copy._built is None
    assert threading.active_count() == threads
    assert copy._sink == [f"sqlite:///{tmp_path}/p.db"]
    assert copy._options == {"max_delay": 60}
    serve_recorder.close(timeout=5)


def test_relative_sink_path_is_made_absolute_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    serve_recorder = ServeRecorder("sqlite:///data/p.db")

    assert serve_recorder._sink == [f"sqlite:///{tmp_path}/data/p.db"]


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("sqlite:///p.db",), {"batchsize": 5}, "batchsize"),
        (("sqlite:///p.db",), {"batch_size": 0}, "batch_size"),
        (("nosuch:///p.db",), {}, "nosuch"),
        ((MemorySink(),), {}, "cannot travel to replicas"),
        ((), {"batch_size": 5}, "need sink="),
    ],
)
def test_bad_serve_recorder_options_are_named(args, options, message):
    with pytest.raises(ConfigError, match=message):
        ServeRecorder(*args, **options)


def test_recorder_of_default_is_built_per_process(monkeypatch, tmp_path):
    monkeypatch.setenv("MLF_SINK", f"sqlite:///{tmp_path}/default.db")
    serve_recorder = ServeRecorder()

    copy = pickle.loads(pickle.dumps(serve_recorder))

    from mlf_middleware.recorder import get_recorder

    assert copy.recorder is get_recorder()


def test_decorated_class_survives_cloudpickle_by_value(tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    url = f"sqlite:///{tmp_path}/p.db"

    @capture_deployment(recorder=ServeRecorder(url))
    class Model:  # local: cloudpickle copies it by value, as Ray does __main__
        async def __call__(self, features: dict) -> int:
            return features["x"] + 1

    # Another process, as a replica is: there the copy builds its recorder.
    script = (
        "import asyncio, sys, cloudpickle\n"
        "from mlf_middleware.integrations.ray_serve import _recorder\n"
        "Model = cloudpickle.loads(sys.stdin.buffer.read())\n"
        "print(asyncio.run(Model()({'x': 1})))\n"
        "assert _recorder.flush_all(5)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=cloudpickle.dumps(Model),
        capture_output=True,
        timeout=60,
        check=True,
    )

    assert done.stdout == b"2\n"
    (record,) = SQLiteSink(tmp_path / "p.db").read_records()
    assert (record.features, record.prediction_data) == ({"x": 1}, {"value": 2})


def test_ingress_app_middleware_pickles_as_configuration(tmp_path):
    serve = pytest.importorskip("ray.serve")
    fastapi = pytest.importorskip("fastapi")
    serve_recorder = ServeRecorder(f"sqlite:///{tmp_path}/p.db", max_delay=60)
    app = fastapi.FastAPI()
    app.add_middleware(PredictionLoggingMiddleware, recorder=serve_recorder)
    serve_recorder.record({"secret": "marker-9c2a"}, {"value": 1})  # queued here
    threads = threading.active_count()

    class Api:
        @app.post("/predict")
        async def predict(self, body: dict) -> dict:
            return {"prediction": 1}

    # serve.ingress pickles the app and keeps the unpickled copy.
    Wrapper = serve.ingress(app)(Api)
    frozen = inspect.getclosurevars(Wrapper.__init__).nonlocals["frozen_app_or_func"]

    assert threading.active_count() == threads
    (middleware,) = frozen.user_middleware
    assert middleware.cls is PredictionLoggingMiddleware
    copy = middleware.kwargs["recorder"]
    assert copy is not serve_recorder
    assert (copy._sink, copy._built) == (serve_recorder._sink, None)
    assert b"marker-9c2a" not in pickle.dumps(copy)
    serve_recorder.close(timeout=5)


def test_capturing_twice_is_refused(recorder):
    @capture_deployment(recorder=recorder)
    class Model:
        def __call__(self, features: dict) -> int:
            return 1

    with pytest.raises(ConfigError, match="captured already"):
        capture_deployment(Model, recorder=recorder)


def test_capture_deployment_refuses_a_serve_deployment():
    serve = pytest.importorskip("ray.serve")

    @serve.deployment
    class Model:
        def __call__(self, features: dict) -> int:
            return 1

    with pytest.raises(ConfigError, match=r"below @serve\.deployment"):
        capture_deployment(Model)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"methods": ["missing"]}, "no method 'missing'"),
        ({"methods": "__call__"}, "methods must be a list"),
        ({"recorder": "sqlite:///p.db"}, "recorder must be"),
        ({"id": "header:x-id"}, "id="),
        ({"sink": "sqlite:///p.db", "recorder": ServeRecorder()}, "not both"),
        ({"sink": "nosuch:///p.db"}, "nosuch"),
    ],
)
def test_bad_decorator_options_are_named(options, message):
    class Model:
        def __call__(self, features: dict) -> int:
            return 1

    with pytest.raises(ConfigError, match=message):
        capture_deployment(Model, **options)
