"""Interpreter exit and SIGTERM under uvicorn flush within the deadline."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import httpx

from mlf_middleware.sinks import SQLiteSink

EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from mlf_middleware import Recorder

    class Hung:
        name = "hung"
        def write(self, records):
            threading.Event().wait()
        def close(self):
            pass

    sink = Hung() if sys.argv[2] == "hung" else sys.argv[1]
    recorder = Recorder(sink, max_delay=5, spool_dir=False)
    for i in range(100):
        recorder.record({"i": i}, {"value": i})
    # no close(): interpreter exit must flush
    """
)


def run_script(*args, env=None):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    return done, time.monotonic() - started


def test_interpreter_exit_flushes_what_was_recorded(tmp_path):
    done, _ = run_script(f"sqlite:///{tmp_path}/p.db", "ok")

    assert done.returncode == 0, done.stderr
    stored = SQLiteSink(tmp_path / "p.db").read_records()
    assert sorted(r.features["i"] for r in stored) == list(range(100))


def test_interpreter_exit_with_hung_sink_keeps_the_deadline():
    done, took = run_script("unused", "hung", env={"MLF_FLUSH_TIMEOUT": "1"})

    assert done.returncode == 0, done.stderr
    assert took < 15


SERVER = textwrap.dedent(
    """
    import os
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from mlf_middleware import PredictionLoggingMiddleware, Recorder

    recorder = Recorder(os.environ["TEST_SINK"], max_delay=30)

    async def predict(request):
        body = await request.json()
        return JSONResponse({"prediction": body["x"]})

    app = PredictionLoggingMiddleware(
        Starlette(routes=[Route("/predict", predict, methods=["POST"])]), recorder
    )
    """
)


def test_sigterm_under_uvicorn_loses_no_record(tmp_path):
    (tmp_path / "sapp.py").write_text(SERVER)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "TEST_SINK": f"sqlite:///{tmp_path}/p.db",
        "PYTHONPATH": str(tmp_path),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "sapp:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{url}/predict", json={"x": -1}, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)  # polling the server's start, not the pipeline
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(50):
                assert client.post("/predict", json={"x": i}).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)

    # uvicorn re-raises the signal once it has shut down: -SIGTERM is clean.
    assert server.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]
    assert b"Traceback" not in err
    stored = SQLiteSink(tmp_path / "p.db").read_records()
    assert sorted(r.features["x"] for r in stored) == list(range(-1, 50))
