"""Middleware cost: in-process ASGI calls, and real HTTP under ``wrk``.

Apps (see ``http_apps.py``): a bare Starlette JSON endpoint, the same under
``PredictionLoggingMiddleware``, and under an equivalent capture written as
a ``BaseHTTPMiddleware``. Request bodies are about 1 KB of JSON.

In-process: each app is called directly (no sockets, no server) on a uvloop
event loop, one request after another; the recorder's sink keeps nothing
and is flushed at the end of each round. Figures are µs per request by the
three clocks of ``_common.clocked``; the target uses the caller's CPU time.

Over HTTP: each app runs under uvicorn (httptools, uvloop) in its own
process bound to 127.0.0.1, and ``wrk`` (one thread, 16 connections)
loads each in turn for a fixed duration, interleaved over rounds. Besides
requests/s and p99 latency, the server process's CPU time per request is
read from the kernel: on a shared machine it is the steadiest figure. The
middleware runs twice: with a sink that keeps nothing (the capture alone)
and with a JSONL file (capture plus delivery, sharing the server's GIL).

Targets: at least 0.85 of the bare app's requests/s, p99 at most 1 ms above
the bare app's, at most 8 µs added per request in-process.

Run: python benchmarks/bench_http.py [--quick] [--results PATH]
Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import http_apps
import psutil
import uvloop
from _common import (
    CLOCKS,
    Figure,
    NullSink,
    cli,
    clocked,
    interleave,
    print_table,
    save,
    target,
)

from mlf_middleware import Recorder

__all__ = ["main"]

HERE = Path(__file__).parent
SERVER_START_TIMEOUT = 30.0


# -- in-process: ASGI calls without sockets -----------------------------------


def scope_of(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def exchange(app: Any, scope: dict[str, Any], body: bytes) -> list[dict]:
    """One request through ``app``, as a server would drive it."""
    sent: list[dict] = []
    done = asyncio.Event()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(dict(scope), receive, send)
    return sent


def data_id_of(sent: list[dict]) -> str | None:
    for name, value in sent[0].get("headers", []):
        if name == b"x-data-id":
            return value.decode()
    return None


def in_process(n: int, rounds: int) -> tuple[dict[str, Any], list, list[str]]:
    """µs per request of each app called directly; problems found."""
    body = http_apps.body()
    scope = scope_of(body)
    loop = uvloop.new_event_loop()
    recorders = {
        "pure": Recorder(NullSink(), spool_dir=False, max_queue_records=n * 4),
        "basehttp": Recorder(NullSink(), spool_dir=False, max_queue_records=n * 4),
    }
    apps = {
        "bare": http_apps.bare(),
        "pure": http_apps.pure(recorders["pure"]),
        "basehttp": http_apps.basehttp(recorders["basehttp"]),
    }
    problems = []
    for name, app in apps.items():  # warm up, and check each one works
        sent = loop.run_until_complete(exchange(app, scope, body))
        has_id = data_id_of(sent) is not None
        if sent[0].get("status") != 200 or has_id != (name != "bare"):
            problems.append(f"in-process {name}: {sent[0]}")

    def round_of(name: str) -> Callable[[], tuple[float, ...]]:
        app = apps[name]
        recorder_ = recorders.get(name)

        async def many() -> None:
            for _ in range(n):
                await exchange(app, scope, body)

        def run() -> tuple[float, ...]:
            def work() -> None:
                loop.run_until_complete(many())
                if recorder_ is not None:
                    recorder_.flush(60)

            return tuple(s / n * 1e6 for s in clocked(work))

        return run

    values = interleave({name: round_of(name) for name in apps}, rounds)
    for name, recorder_ in recorders.items():
        stats = recorder_.close(30)
        if stats["written"] != n * rounds + 1 or stats["dropped"]:
            problems.append(f"in-process {name} wrote {stats['written']}: {stats}")
    loop.close()

    results: dict[str, Any] = {"requests_per_round": n, "clock_for_targets": "thread"}
    table = []
    for name in apps:
        entry: dict[str, Any] = {}
        for index, clock in enumerate(CLOCKS):
            mine = [r[index] for r in values[name]]
            bare = [r[index] for r in values["bare"]]
            entry[clock] = {"per_request": Figure.of(mine, "µs/request")}
            if name != "bare":
                entry[clock]["added"] = Figure.of(
                    [m - b for m, b in zip(mine, bare, strict=True)], "µs/request"
                )
        results[name] = entry
        if name == "bare":
            table.append(("bare", entry["thread"]["per_request"], "baseline"))
        else:
            table.append(
                (
                    f"{name} added",
                    entry["thread"]["added"],
                    f"wall {entry['wall']['added']['median']:.1f} µs added",
                )
            )
    results["pure"]["target_added"] = target(
        "at most 8 µs added per request in-process (median, caller's CPU)",
        results["pure"]["thread"]["added"]["median"],
        8.0,
    )
    return results, table, problems


# -- over HTTP: uvicorn in a subprocess, wrk on 127.0.0.1 ----------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One uvicorn process serving a factory of ``http_apps`` on loopback."""

    def __init__(self, factory: str, sink: str = "null") -> None:
        self.factory = factory
        self.sink = sink
        self.port = free_port()
        env = {
            **os.environ,
            "MLF_BENCH_SINK": sink,
            "BENTOML_DO_NOT_TRACK": "true",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p
            ),
        }
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", f"http_apps:{factory}",
                "--factory", "--host", "127.0.0.1", "--port", str(self.port),
                "--http", "httptools", "--loop", "uvloop", "--lifespan", "on",
                "--no-access-log", "--log-level", "warning",
            ],
            cwd=HERE,
            env=env,
        )  # fmt: skip
        self.psutil = psutil.Process(self.process.pid)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn {self.factory} exited early")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            time.sleep(0.05)  # polling a child's port, not the pipeline
        raise RuntimeError(f"uvicorn {self.factory} not ready")

    def post_once(self, body: bytes) -> tuple[int, str | None]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(
                "POST", "/predict", body, {"content-type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("x-data-id")
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        times = self.psutil.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def servers(specs: dict[str, tuple[str, str]]) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for name, (factory, sink) in specs.items():
            started[name] = Server(factory, sink)
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


def wrk(server: Server, body_file: Path, seconds: float) -> dict[str, Any]:
    """One wrk run against ``server``; its figures and the server's CPU."""
    cpu = server.cpu_seconds()
    out = subprocess.run(
        [
            "wrk", "-t1", "-c16", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(HERE / "post.lua"),
            f"http://127.0.0.1:{server.port}/predict", str(body_file),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout  # fmt: skip
    figures = json.loads(out.strip().splitlines()[-1])
    figures["server_cpu_s"] = server.cpu_seconds() - cpu
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def over_http(seconds: float, rounds: int, folder: Path):
    """wrk figures of each app, interleaved over rounds; problems found."""
    body = http_apps.body()
    body_file = folder / "body.json"
    body_file.write_bytes(body)
    jsonl = folder / "records"
    specs = {
        "bare": ("bare", "null"),
        "pure": ("pure", "null"),
        "pure+jsonl": ("pure", f"jsonl:///{jsonl}"),
        "basehttp": ("basehttp", "null"),
    }
    problems = []
    with servers(specs) as running:
        for name, server in running.items():
            status, data_id = server.post_once(body)
            if status != 200 or (data_id is None) != (name == "bare"):
                problems.append(f"http {name}: status {status}, x-data-id {data_id}")
            if seconds > 1:
                wrk(server, body_file, 1)  # warm up

        runs = interleave(
            {
                name: (lambda s=server: wrk(s, body_file, seconds))
                for name, server in running.items()
            },
            rounds,
        )
    for name, figures in runs.items():
        for run in figures:
            errors = sum(run["errors"].values())
            if errors:
                problems.append(f"http {name}: wrk errors {run['errors']}")
    lines = count_lines(jsonl)
    sent = sum(r["requests"] for r in runs["pure+jsonl"])
    if lines < sent:
        problems.append(f"http pure+jsonl: {lines} records for {sent} requests")
    return summarise_http(runs, seconds), problems


def count_lines(folder: Path) -> int:
    """Lines in the JSONL sink's files (plain files: no compression asked)."""
    total = 0
    for path in folder.glob("*.jsonl*"):
        with path.open("rb") as handle:
            total += sum(1 for _ in handle)
    return total


def cpu_per_request(run: dict[str, Any]) -> float:
    return run["server_cpu_s"] / max(run["requests"], 1) * 1e6


def summarise_http(runs: dict[str, list[dict]], seconds: float):
    """Requests/s, p99 and server CPU per request; ratios paired by round."""
    bare = runs["bare"]
    results: dict[str, Any] = {
        "seconds_per_run": seconds,
        "wrk": "1 thread, 16 connections",
    }
    table = []
    for name, figures in runs.items():
        rps = [r["rps"] for r in figures]
        p99 = [r["p99_us"] / 1e3 for r in figures]
        cpu = [cpu_per_request(r) for r in figures]
        entry: dict[str, Any] = {
            "requests_per_s": Figure.of(rps, "req/s"),
            "p99": Figure.of(p99, "ms"),
            "server_cpu": Figure.of(cpu, "µs/request"),
            "requests": sum(r["requests"] for r in figures),
        }
        if name != "bare":
            pairs = list(zip(figures, bare, strict=True))
            entry["rps_ratio"] = Figure.of(
                [r["rps"] / b["rps"] for r, b in pairs], "x bare"
            )
            entry["p99_added"] = Figure.of(
                [(r["p99_us"] - b["p99_us"]) / 1e3 for r, b in pairs], "ms"
            )
            entry["server_cpu_added"] = Figure.of(
                [cpu_per_request(r) - cpu_per_request(b) for r, b in pairs],
                "µs/request",
            )
        results[name] = entry

    for name in ("pure", "pure+jsonl"):
        entry = results[name]
        entry["target_rps"] = target(
            "at least 0.85 of the bare app's requests/s (median of paired ratios)",
            entry["rps_ratio"]["median"],
            0.85,
            at_most=False,
        )
        entry["target_p99"] = target(
            "p99 at most 1 ms above the bare app's (median of paired rounds)",
            entry["p99_added"]["median"],
            1.0,
        )

    for name, entry in results.items():
        if not isinstance(entry, dict) or "requests_per_s" not in entry:
            continue
        note = "baseline"
        if name != "bare":
            note = (
                f"{entry['rps_ratio']['median']:.2f}x bare req/s; p99 "
                f"{entry['p99']['median']:.2f} ms "
                f"({entry['p99_added']['median']:+.2f}); server CPU "
                f"+{entry['server_cpu_added']['median']:.1f} µs/request"
            )
        table.append((name, entry["requests_per_s"], note))
    return results, table


def main() -> None:
    args = cli(
        __doc__.splitlines()[0],
        lambda parser: parser.add_argument(
            "--in-process-only", action="store_true", help="skip the wrk part"
        ),
    )
    n, rounds = (200, 3) if args.quick else (2_000, 9)
    seconds, http_rounds = (1, 1) if args.quick else (5, 5)

    results: dict[str, Any] = {}
    results["in_process"], table, problems = in_process(n, rounds)
    print_table(
        f"middleware in-process, {n:,} ASGI calls per round, {rounds} rounds "
        "(caller's CPU time)",
        table,
    )

    if not args.in_process_only:
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed: apt-get install -y wrk")
        with tempfile.TemporaryDirectory() as folder:
            (results["wrk"], table), more = over_http(
                seconds, http_rounds, Path(folder)
            )
        problems += more
        print_table(
            f"middleware over HTTP (uvicorn httptools+uvloop, wrk), "
            f"{seconds} s x {http_rounds} rounds",
            table,
        )
    results["problems"] = problems
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    if args.save:
        save("http", results)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
