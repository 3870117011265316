"""Delivery promises under a real server: outages, slow sinks, event-loop lag.

These run a real uvicorn server on 127.0.0.1 with bounded request counts and
time. The outage test keeps the sink down for 10 seconds on purpose.
"""

import asyncio
import contextlib
import threading
import time

import httpx
import psutil
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlf_middleware import PredictionLoggingMiddleware, Recorder
from mlf_middleware.exceptions import SinkUnavailable
from mlf_middleware.sinks import MemorySink, SQLiteSink
from tests.servers import ServerThread


def balanced(figures):
    return figures["accepted"] == (
        figures["written"]
        + figures["rejected"]
        + figures["dropped"]
        + figures["queue_size"]
        + figures["spooled"]
    )


async def predict(request):
    body = await request.json()
    return JSONResponse({"prediction": body["x"] * 2})


def app_with(recorder, **extra):
    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])], **extra)
    return PredictionLoggingMiddleware(app, recorder)


class FlakySQLite(SQLiteSink):
    """A real SQLite store that refuses writes while ``down`` is set."""

    def __init__(self, path):
        super().__init__(path)
        self.down = threading.Event()

    def write_wire(self, lines):
        if self.down.is_set():
            raise SinkUnavailable("maintenance")
        super().write_wire(lines)


class Sampler(threading.Thread):
    """Check the accounting equation of every sink, over and over."""

    def __init__(self, recorder):
        super().__init__(daemon=True)
        self.recorder = recorder
        self.stop = threading.Event()
        self.samples = 0
        self.unbalanced = []

    def run(self):
        while not self.stop.wait(0.02):
            for figures in self.recorder.stats()["sinks"].values():
                self.samples += 1
                if not balanced(figures):
                    self.unbalanced.append(figures)


def test_ten_second_outage_loses_no_request_and_no_record(tmp_path):
    sink = FlakySQLite(tmp_path / "p.db")
    sink.down.set()
    recorder = Recorder(sink, max_delay=0.05)
    sampler = Sampler(recorder)
    sampler.start()
    statuses = []

    with (
        ServerThread(app_with(recorder)) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        threading.Timer(10.0, sink.down.clear).start()
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 12 and i < 5000:
            response = client.post("/predict", json={"x": i})
            statuses.append((response.status_code, response.json()))
            i += 1
        assert recorder.flush(15)
    sampler.stop.set()
    sampler.join()
    stats = recorder.close(5)

    assert statuses == [(200, {"prediction": 2 * n}) for n in range(i)]
    stored = sink.read_records()
    assert sorted(r.features["x"] for r in stored) == list(range(i))
    assert len({r.record_id for r in stored}) == i
    assert stats["written"] == i
    assert stats["failed_writes"] > 0
    assert sampler.samples > 100
    assert sampler.unbalanced == []


class SlowSink(MemorySink):
    def write(self, records):
        time.sleep(0.2)  # the sink under test is slow on purpose
        super().write(records)


def test_slow_sink_never_lags_the_event_loop():
    sink = SlowSink()
    recorder = Recorder(sink, max_queue_records=100, batch_size=50)
    lags = []

    async def watch_lag():
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            lags.append(time.monotonic() - before - 0.005)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(watch_lag())
        yield
        task.cancel()

    process = psutil.Process()
    rss_before = process.memory_info().rss
    with ServerThread(app_with(recorder, lifespan=lifespan)) as server:
        statuses = asyncio.run(_hammer(server.url, total=1000, concurrency=20))
        rss_after = process.memory_info().rss
        assert recorder.flush(30)
    stats = recorder.close(5)

    assert statuses == [200] * 1000
    assert len(lags) > 10
    # Lag on a shared machine has outliers the library does not cause: the
    # promise (under 50 ms) is held to the 99th percentile, the worst case
    # to a looser bound.
    lags.sort()
    assert lags[int(len(lags) * 0.99)] < 0.05
    assert lags[-1] < 0.25
    assert rss_after - rss_before < 100 * 1024 * 1024
    assert stats["written"] == 1000
    assert sorted(r.features["x"] for r in sink.records) == list(range(1000))
    assert balanced(stats["sinks"]["memory"])


async def _hammer(url, *, total, concurrency):
    statuses = [0] * total
    queue = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker(client):
        while not queue.empty():
            i = queue.get_nowait()
            response = await client.post("/predict", json={"x": i})
            statuses[i] = response.status_code

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return statuses
