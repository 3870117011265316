"""Real gunicorn, uvicorn workers, --preload: each worker sends its own records."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from mlf_middleware.sinks import SQLiteSink

pytest.importorskip("gunicorn")
pytest.importorskip("uvicorn_worker")

APP = textwrap.dedent(
    """
    import os
    import time

    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mlf_middleware import PredictionLoggingMiddleware, Recorder

    # Built once in the master (--preload); every worker inherits it.
    recorder = Recorder(os.environ["TEST_SINK"], max_delay=0.05)
    recorder.record({"from": "master"}, {"value": 0})

    async def predict(request):
        body = await request.json()
        return JSONResponse({"prediction": body["x"], "pid": os.getpid()})

    async def flush(request):
        started = time.monotonic()
        done = await anyio.to_thread.run_sync(recorder.flush, 2.0)
        took = time.monotonic() - started
        return JSONResponse({"done": done, "took": took, "pid": os.getpid()})

    app = PredictionLoggingMiddleware(
        Starlette(routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/flush", flush, methods=["GET"]),
        ]),
        recorder,
    )
    """
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url, deadline):
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/flush", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)  # polling the server's start, not the pipeline
    raise AssertionError("gunicorn did not start")


def test_preloaded_workers_each_deliver_their_own_records(tmp_path):
    (tmp_path / "gapp.py").write_text(APP)
    port = free_port()
    db = tmp_path / "p.db"
    env = {**os.environ, "TEST_SINK": f"sqlite:///{db}", "PYTHONPATH": str(tmp_path)}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [
            str(gunicorn if gunicorn.exists() else shutil.which("gunicorn")),
            "-w",
            "2",
            "-k",
            "uvicorn_worker.UvicornWorker",
            "--preload",
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "--graceful-timeout",
            "10",
            "gapp:app",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, time.monotonic() + 30)
        pids = Counter()
        for i in range(60):
            # A new connection each time, so both workers get requests.
            answer = httpx.post(f"{url}/predict", json={"x": i}, timeout=10).json()
            assert answer["prediction"] == i
            pids[answer["pid"]] += 1
        flushes = [httpx.get(f"{url}/flush", timeout=10).json() for _ in range(6)]
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)

    assert server.returncode == 0, err.decode()[-2000:]
    assert len(pids) == 2
    assert [(f["done"], f["took"] < 2.5) for f in flushes] == [(True, True)] * 6, (
        flushes
    )
    stored = [r for r in SQLiteSink(db).read_records() if "x" in r.features]
    assert sorted(r.features["x"] for r in stored) == list(range(60))
    assert len({r.record_id for r in stored}) == 60
    by_process = Counter(r.record_id.rsplit("-", 1)[0] for r in stored)
    assert sorted(by_process.values()) == sorted(pids.values())
