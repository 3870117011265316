"""The Ray Serve adapter against a real Ray Serve, shared by the session.

Run inside a loopback-only network namespace (``run_in_netns.sh``); the
``ray_serve`` fixture skips anywhere else. The one-replica applications are
deployed together, once (replica start-up is the slow part); each test
sends real HTTP (or handle) requests to its own application, deletes it (a
graceful shutdown: the replica flushes) and reads what the sink holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

serve = pytest.importorskip("ray.serve", reason="ray[serve] (the ray extra) missing")

import httpx  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from ray import cloudpickle  # noqa: E402
from starlette.requests import Request  # noqa: E402

from mlf_middleware import Prediction, PredictionLoggingMiddleware  # noqa: E402
from mlf_middleware.integrations.ray_serve import (  # noqa: E402
    ServeRecorder,
    capture_deployment,
)
from mlf_middleware.sinks import SQLiteSink  # noqa: E402

# Starting Ray and the replicas takes a minute or more on a busy machine.
pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

# The replicas cannot import this test module (pytest imports it by file
# name): send its classes and functions by value, as Ray does for __main__.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def stored(path: Path) -> list[Prediction]:
    """The predictions in the SQLite file, in the order they were written."""
    return [r for r in SQLiteSink(path).read_records() if isinstance(r, Prediction)]


async def post_all(url: str, bodies: list, ids: list[str] | None = None) -> list:
    """POST every body at once, each on a connection of its own."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=no_reuse) as client:

        async def post(index: int, body: dict) -> httpx.Response:
            headers = {"x-request-id": ids[index]} if ids else {}
            return await client.post(url, json=body, headers=headers)

        return await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))


def serve_metadata(record: Prediction) -> dict:
    raw = record.raw_data
    return {k: raw[k] for k in ("framework", "application", "deployment")}


# Test replicas claim no CPU, so that all of them fit the 2-CPU instance.
NO_CPU = {"num_cpus": 0}


# --------------------------------------------------------------------------
# The one-replica applications, deployed together
# --------------------------------------------------------------------------


def scorer_app(db: Path):
    @serve.deployment(ray_actor_options=NO_CPU)
    @capture_deployment(recorder=ServeRecorder(f"sqlite:///{db}", max_delay=30))
    class Scorer:
        async def __call__(self, request: Request) -> dict:
            body = await request.json()  # still readable after capture
            return {"prediction": body["x"] * 2}

        def replica_id(self) -> str:
            return serve.get_replica_context().replica_id.unique_id

    return Scorer.bind()


def echo_app(db: Path):
    @serve.deployment(ray_actor_options=NO_CPU)
    @capture_deployment(recorder=ServeRecorder(f"sqlite:///{db}", max_delay=30))
    async def echo(request: Request) -> dict:
        return {"value": (await request.json())["q"]}

    return echo.bind()


def batched_app(db: Path):
    @serve.deployment(ray_actor_options=NO_CPU, max_ongoing_requests=8)
    class Batched:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        async def __call__(self, request: Request) -> dict:
            return await self.predict(request)

        @serve.batch(max_batch_size=4, batch_wait_timeout_s=2.0)
        @capture_deployment(recorder=ServeRecorder(f"sqlite:///{db}"))
        async def predict(self, requests: list[Request]) -> list[dict]:
            self.sizes.append(len(requests))
            bodies = [await request.json() for request in requests]
            return [{"prediction": body["x"] * 10} for body in bodies]

        def batch_sizes(self) -> list[int]:
            return self.sizes

    return Batched.bind()


def outer_app(db: Path):
    @serve.deployment(ray_actor_options=NO_CPU, max_ongoing_requests=8)
    @capture_deployment(recorder=ServeRecorder(f"sqlite:///{db}"), methods=["predict"])
    class Outer:
        @serve.batch(max_batch_size=4, batch_wait_timeout_s=2.0)
        async def predict(self, rows: list[dict]) -> list[int]:
            return [row["x"] * 10 for row in rows]

    return Outer.bind()


def api_app(db: Path):
    app = FastAPI()
    app.add_middleware(
        PredictionLoggingMiddleware,
        recorder=ServeRecorder(f"sqlite:///{db}", max_delay=30),
    )

    @serve.deployment(ray_actor_options=NO_CPU)
    @serve.ingress(app)
    class Api:
        @app.post("/predict")
        async def predict(self, body: dict) -> dict:
            return {"prediction": body["x"] + 1}

    return Api.bind()


APPS = {
    "scorer": scorer_app,
    "echo": echo_app,
    "batched": batched_app,
    "outer": outer_app,
    "api": api_app,
}


@dataclass(frozen=True)
class Apps:
    base_url: str
    folder: Path

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def db(self, name: str) -> Path:
        return self.folder / f"{name}.db"


@pytest.fixture(scope="module")
def apps(ray_serve, tmp_path_factory):
    """Deploy the one-replica applications at once; delete what is left."""
    folder = tmp_path_factory.mktemp("serve-apps")
    targets = [
        serve.RunTarget(
            build(folder / f"{name}.db"),
            name=name,
            route_prefix=None if name == "outer" else f"/{name}",
        )
        for name, build in APPS.items()
    ]
    started = time.monotonic()
    serve.run_many(targets)
    print(f"{len(targets)} applications ready in {time.monotonic() - started:.1f} s")

    yield Apps(ray_serve.url, folder)
    for name in APPS:
        with contextlib.suppress(Exception):
            serve.delete(name)


# --------------------------------------------------------------------------
# Requests to __call__
# --------------------------------------------------------------------------


def test_request_records_body_output_and_replica(apps):
    response = httpx.post(
        apps.url("scorer"), json={"x": 21}, headers={"x-request-id": "req-1"}
    )
    replica_id = serve.get_app_handle("scorer").replica_id.remote().result()
    serve.delete("scorer")  # graceful: the replica flushes (max_delay is 30 s)

    assert response.json() == {"prediction": 42}
    (record,) = stored(apps.db("scorer"))
    assert (record.features, record.prediction_data) == ({"x": 21}, {"value": 42})
    assert record.raw_data == {
        "framework": "ray_serve",
        "function": "scorer_app.<locals>.Scorer.__call__",
        "application": "scorer",
        "deployment": "Scorer",
        "replica_id": replica_id,
        "request_id": "req-1",
    }


def test_function_deployment_flushes_at_delete(apps):
    httpx.post(apps.url("echo"), json={"q": "a"}, headers={"x-request-id": "e-1"})
    serve.delete("echo")

    (record,) = stored(apps.db("echo"))
    assert (record.features, record.prediction_data) == ({"q": "a"}, {"value": "a"})
    assert serve_metadata(record) == {
        "framework": "ray_serve",
        "application": "echo",
        "deployment": "echo",
    }
    assert record.raw_data["request_id"] == "e-1"


def test_ingress_middleware_records_with_replica_metadata(apps):
    response = httpx.post(
        f"{apps.url('api')}/predict", json={"x": 1}, headers={"x-request-id": "api-1"}
    )
    serve.delete("api")  # lifespan shutdown: the middleware flushes

    assert response.json() == {"prediction": 2}
    (record,) = stored(apps.db("api"))
    assert (record.features, record.prediction_data) == ({"x": 1}, {"value": 2})
    assert record.data_id == response.headers["x-data-id"]
    assert serve_metadata(record) == {
        "framework": "ray_serve",
        "application": "api",
        "deployment": "Api",
    }
    assert record.raw_data["request_id"] == "api-1"
    assert record.raw_data["method"] == "POST"


# --------------------------------------------------------------------------
# serve.batch
# --------------------------------------------------------------------------


def test_batch_of_four_requests_gives_four_exact_records(apps):
    ids = [f"batch-{i}" for i in range(4)]
    bodies = [{"x": i} for i in range(4)]

    responses = asyncio.run(post_all(apps.url("batched"), bodies, ids))
    sizes = serve.get_app_handle("batched").batch_sizes.remote().result()
    serve.delete("batched")

    assert [r.json() for r in responses] == [{"prediction": i * 10} for i in range(4)]
    assert sizes == [4]  # one batch: the request ids came from the batch context
    records = sorted(stored(apps.db("batched")), key=lambda r: r.features["x"])
    assert [r.features for r in records] == bodies
    assert [r.prediction_data for r in records] == [
        {"value": i * 10} for i in range(4)
    ]
    assert [r.raw_data["request_id"] for r in records] == ids


def test_capture_around_serve_batch_records_each_call(apps):
    handle = serve.get_app_handle("outer")

    responses = [handle.predict.remote({"x": i}) for i in range(4)]
    results = [response.result() for response in responses]
    request_ids = [response.request_id for response in responses]
    serve.delete("outer")

    assert results == [0, 10, 20, 30]
    records = sorted(stored(apps.db("outer")), key=lambda r: r.features["x"])
    assert [(r.features, r.prediction_data) for r in records] == [
        ({"x": i}, {"value": i * 10}) for i in range(4)
    ]
    assert [r.raw_data["request_id"] for r in records] == request_ids


# --------------------------------------------------------------------------
# The example application
# --------------------------------------------------------------------------


def test_example_app_records_each_flower(ray_serve, tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    db = tmp_path / "iris.db"
    monkeypatch.setenv("MLF_SINK", f"sqlite:///{db}")
    example = Path(__file__).parents[3] / "examples" / "ray_serve_app.py"
    spec = importlib.util.spec_from_file_location("ray_serve_example", example)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        cloudpickle.register_pickle_by_value(module)
        flowers = [
            dict(zip(module.FEATURES, row.tolist(), strict=True))
            for row in module.IRIS.data[::50]
        ]

        serve.run(module.app, name="iris", route_prefix="/iris")
        responses = asyncio.run(post_all(f"{ray_serve.url}/iris", flowers))
        serve.delete("iris")
    finally:
        sys.modules.pop(spec.name, None)

    answers = [r.json() for r in responses]
    assert [a["label"] for a in answers] == ["setosa", "versicolor", "virginica"]
    records = {r.prediction_data["value"]: r for r in stored(db)}
    assert sorted(records) == ["setosa", "versicolor", "virginica"]
    for flower, answer in zip(flowers, answers, strict=True):
        record = records[answer["label"]]
        assert record.features == flower
        assert record.prediction_data == {
            "value": answer["label"],
            "probabilities": answer["probabilities"],
        }
        assert record.model_version_fqn == "iris-logreg:1"
        assert serve_metadata(record) == {
            "framework": "ray_serve",
            "application": "iris",
            "deployment": "IrisClassifier",
        }


# --------------------------------------------------------------------------
# Two replicas, one store; shutdown right after a burst
# --------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_replicas_postgres_count_equals_requests(ray_serve, postgres_server):
    # PostgreSQL is reached through its unix socket, as it would be from a
    # namespace it was not started in.
    sink_url = postgres_server.socket_url()

    @serve.deployment(num_replicas=2, ray_actor_options=NO_CPU)
    @capture_deployment(recorder=ServeRecorder(sink_url))
    class PgPair:
        async def __call__(self, request: Request) -> dict:
            return {"prediction": (await request.json())["n"]}

    serve.run(PgPair.bind(), name="pgpair", route_prefix="/pgpair")
    bodies = [{"n": n} for n in range(30)]
    responses = asyncio.run(post_all(f"{ray_serve.url}/pgpair", bodies))
    serve.delete("pgpair")

    assert {r.status_code for r in responses} == {200}
    with postgres_server.connect() as conn:
        count, replicas = conn.execute(
            "SELECT count(*), count(DISTINCT raw_data->>'replica_id') "
            "FROM mlf_predictions WHERE raw_data->>'application' = 'pgpair'"
        ).fetchone()
    assert (count, replicas) == (30, 2)


def test_two_replicas_burst_then_serve_shutdown_loses_nothing(ray_serve, tmp_path):
    db = tmp_path / "p.db"

    # Records wait up to 30 s for a batch: only the shutdown flush writes them.
    @serve.deployment(num_replicas=2, ray_actor_options=NO_CPU)
    @capture_deployment(recorder=ServeRecorder(f"sqlite:///{db}", max_delay=30))
    class Pair:
        async def __call__(self, request: Request) -> dict:
            return {"prediction": (await request.json())["n"] % 3}

    serve.run(Pair.bind(), name="pair", route_prefix="/pair")
    ids = [f"pair-{n}" for n in range(60)]
    bodies = [{"n": n} for n in range(60)]
    responses = asyncio.run(post_all(f"{ray_serve.url}/pair", bodies, ids))

    started = time.monotonic()
    serve.shutdown()
    print(f"serve.shutdown: {time.monotonic() - started:.1f} s")
    try:
        assert {r.status_code for r in responses} == {200}
        records = stored(db)
        assert sorted(r.raw_data["request_id"] for r in records) == sorted(ids)
        assert len({r.raw_data["replica_id"] for r in records}) == 2
    finally:
        serve.start(http_options={"host": "127.0.0.1", "port": ray_serve.port})
