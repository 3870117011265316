"""PredictionLoggingMiddleware under a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import UTC, datetime

import anyio.to_thread
import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from servers import ServerThread, serve

from mlf_middleware import generate_hash_from_data
from mlf_middleware.middleware import PredictionLoggingMiddleware
from mlf_middleware.recorder import Recorder
from mlf_middleware.sinks import MemorySink
from mlf_middleware.testing import FixedClock, flushed, memory_recorder

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CLASSES = ["setosa", "versicolor", "virginica"]
WAIT = 5.0


def iris_app():
    """A FastAPI model server returning one probability list per row."""
    app = FastAPI()

    @app.post("/predict")
    async def predict(body: dict):
        scores = [[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.05, 0.05, 0.9]]
        return {"predictions": scores[: len(body["instances"])]}

    return app


@pytest.fixture
def recorder():
    with memory_recorder(clock=FixedClock(T0)) as rec:
        yield rec


def test_fastapi_batch_of_three_under_uvicorn(recorder):
    app = PredictionLoggingMiddleware(iris_app(), recorder, class_names=CLASSES)
    rows = [
        {"sepal_length": 5.1, "petal_length": 1.4},
        {"sepal_length": 6.2, "petal_length": 4.5},
        {"sepal_length": 7.7, "petal_length": 6.7},
    ]

    with serve(app) as url:
        response = httpx.post(f"{url}/predict", json={"instances": rows})

    ids = [generate_hash_from_data(row) for row in rows]
    assert response.status_code == 200
    assert response.json() == {
        "predictions": [[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.05, 0.05, 0.9]]
    }
    assert response.headers["x-data-id"].split(",") == ids
    records = flushed(recorder)
    assert [(r.data_id, r.features, r.prediction_data) for r in records] == [
        (
            ids[0],
            rows[0],
            {
                "value": "setosa",
                "probabilities": {
                    "setosa": 0.8,
                    "versicolor": 0.15,
                    "virginica": 0.05,
                },
            },
        ),
        (
            ids[1],
            rows[1],
            {
                "value": "versicolor",
                "probabilities": {
                    "setosa": 0.1,
                    "versicolor": 0.7,
                    "virginica": 0.2,
                },
            },
        ),
        (
            ids[2],
            rows[2],
            {
                "value": "virginica",
                "probabilities": {
                    "setosa": 0.05,
                    "versicolor": 0.05,
                    "virginica": 0.9,
                },
            },
        ),
    ]
    assert [r.raw_data for r in records] == 3 * [
        {
            "framework": "asgi",
            "method": "POST",
            "path": "/predict",
            "route": "/predict",
            "status": 200,
        }
    ]


def raw_request(port, head, parts, between=None):
    """Send an HTTP/1.1 request in parts over a plain socket; return the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(head)
        for index, part in enumerate(parts):
            sock.sendall(part)
            if between is not None and index < len(parts) - 1:
                between()
        reply = b""
        while data := sock.recv(65536):  # the request asked to close
            reply += data
    return reply


def test_body_in_two_chunks_reaches_endpoint_byte_identical(recorder):
    first_arrived = threading.Event()
    received = []

    async def endpoint(scope, receive, send):
        while True:
            message = await receive()
            received.append(message)
            if message.get("more_body"):
                first_arrived.set()
            else:
                break
        body = b"".join(m["body"] for m in received)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"value": %d}' % len(body)})

    payload = orjson.dumps({"text": "ünïcode " * 20, "n": [1.5, 2, None]})
    half = len(payload) // 2
    head = (
        b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(payload)
    )

    wrapped = PredictionLoggingMiddleware(endpoint, recorder)
    with ServerThread(wrapped, lifespan="off") as server:
        reply = raw_request(
            server.port,
            head,
            [payload[:half], payload[half:]],
            between=lambda: first_arrived.wait(WAIT),
        )

    assert len([m for m in received if m["type"] == "http.request"]) >= 2
    assert b"".join(m["body"] for m in received) == payload
    assert b'\r\n{"value": %d}\r\n' % len(payload) in reply
    data_id = generate_hash_from_data(orjson.loads(payload))
    assert f"x-data-id: {data_id}".encode() in reply
    [record] = flushed(recorder)
    assert record.features == orjson.loads(payload)


def test_client_disconnect_before_response_raises_nothing(recorder):
    client_gone = threading.Event()
    app_done = threading.Event()
    errors = []

    async def endpoint(scope, receive, send):
        await receive()
        if scope["path"] == "/hang":
            # Wait (off the loop) for the client to close, then for the
            # disconnect, and answer anyway, as a slow model would.
            await anyio.to_thread.run_sync(client_gone.wait, WAIT)
            disconnect = await receive()
            assert disconnect["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"value": 1}'})
        if scope["path"] == "/hang":
            app_done.set()

    middleware = PredictionLoggingMiddleware(endpoint, recorder)

    async def guarded(scope, receive, send):
        try:
            await middleware(scope, receive, send)
        except BaseException as exc:
            errors.append(exc)
            raise

    body = b'{"x": 1}'
    head = (
        b"POST /hang HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with serve(guarded, lifespan="off") as url:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as s:
            s.sendall(head + body)
        client_gone.set()
        assert app_done.wait(WAIT)
        after = httpx.post(f"{url}/predict", json={"x": 2})

    assert errors == []
    assert after.status_code == 200
    assert after.headers["x-data-id"] == generate_hash_from_data({"x": 2})


def test_failing_sink_leaves_every_request_served():
    class FailingSink(MemorySink):
        def __init__(self):
            super().__init__()
            self.failed = threading.Event()

        def write(self, records):
            self.failed.set()
            raise ConnectionError("sink down")

    sink = FailingSink()
    recorder = Recorder(sink, max_delay=0.01, flush_timeout=0.5)
    app = PredictionLoggingMiddleware(iris_app(), recorder, class_names=CLASSES)

    try:
        with serve(app) as url, httpx.Client(base_url=url) as client:
            responses = [
                client.post("/predict", json={"instances": [{"i": i}]})
                for i in range(20)
            ]
            assert sink.failed.wait(WAIT)
    finally:
        stats = recorder.close(timeout=0.5)

    assert [r.status_code for r in responses] == [200] * 20
    assert {r.text for r in responses} == {'{"predictions":[[0.8,0.15,0.05]]}'}
    assert [r.headers["x-data-id"] for r in responses] == [
        generate_hash_from_data({"i": i}) for i in range(20)
    ]
    assert stats["captured"] == 20
    assert stats["failed_writes"] >= 1
    assert stats["written"] == 0


def test_non_json_body_served_exactly_as_without_middleware(recorder, caplog):
    caplog.set_level(logging.INFO)
    bare = iris_app()
    headers = {"content-type": "application/json"}

    with serve(bare) as url:
        expected = httpx.post(f"{url}/predict", content=b"{oops", headers=headers)
    with serve(PredictionLoggingMiddleware(iris_app(), recorder)) as url:
        got = httpx.post(f"{url}/predict", content=b"{oops", headers=headers)

    assert got.status_code == expected.status_code == 422
    assert got.content == expected.content
    assert "x-data-id" not in got.headers
    assert flushed(recorder) == []
    ours = [r for r in caplog.records if r.name.startswith("mlf_middleware")]
    assert [r.levelno for r in ours if r.levelno >= logging.WARNING] in (
        [],
        [logging.WARNING],
    )


def test_first_streamed_chunk_arrives_before_the_second_exists(recorder):
    release = threading.Event()
    events = []

    app = FastAPI()

    @app.post("/stream")
    async def stream(request: Request):
        await request.body()

        async def chunks():
            yield b'{"value": '
            await anyio.to_thread.run_sync(release.wait, WAIT)
            events.append("app produced second")
            yield b'"done"}'

        return StreamingResponse(chunks(), media_type="application/json")

    wrapped = PredictionLoggingMiddleware(app, recorder)

    with (
        serve(wrapped) as url,
        httpx.Client() as client,
        client.stream("POST", f"{url}/stream", json={"x": 1}) as response,
    ):
        parts = response.iter_raw()
        first = next(parts)
        events.append("client got first")
        release.set()
        rest = b"".join(parts)

    assert events == ["client got first", "app produced second"]
    assert first + rest == b'{"value": "done"}'
    assert response.headers["x-data-id"] == generate_hash_from_data({"x": 1})
    assert [r.prediction_data for r in flushed(recorder)] == [{"value": "done"}]


def test_lifespan_shutdown_flushes_pending_records():
    sink = MemorySink()
    # A long batching delay: only a flush delivers within the test.
    recorder = Recorder(sink, max_delay=60)
    app = PredictionLoggingMiddleware(iris_app(), recorder)

    try:
        with serve(app) as url:
            httpx.post(f"{url}/predict", json={"instances": [{"x": 1}]})
            assert sink.records == []
        assert [r.features for r in sink.records] == [{"x": 1}]
    finally:
        recorder.close(timeout=1)


@pytest.mark.parametrize("placement", ["inside", "outside"])
def test_gzip_responses_are_recorded_decoded(recorder, placement):
    from starlette.middleware.gzip import GZipMiddleware

    app = iris_app()
    if placement == "inside":
        app.add_middleware(GZipMiddleware, minimum_size=1)
        wrapped = PredictionLoggingMiddleware(app, recorder, class_names=CLASSES)
    else:
        wrapped = GZipMiddleware(
            PredictionLoggingMiddleware(app, recorder, class_names=CLASSES),
            minimum_size=1,
        )

    with serve(wrapped) as url:
        response = httpx.post(
            f"{url}/predict",
            json={"instances": [{"x": 1}]},
            headers={"accept-encoding": "gzip"},
        )

    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"predictions": [[0.8, 0.15, 0.05]]}
    assert response.headers["x-data-id"] == generate_hash_from_data({"x": 1})
    assert [r.prediction_data for r in flushed(recorder)] == [
        {
            "value": "setosa",
            "probabilities": {"setosa": 0.8, "versicolor": 0.15, "virginica": 0.05},
        }
    ]
