"""Where the time goes on the caller's side: cProfile of each hot path.

Paths: the decorator's call (10 features in, a label and 3 probabilities
out), ``Recorder.record`` alone, a 10,000-row DataFrame call, and one ASGI
request through ``PredictionLoggingMiddleware`` (in-process, no sockets).
For each, the functions with the most own time are listed with their share
of the path's total and their own time per outer call. cProfile adds its own
cost to every function call (and its wall clock takes in the load of other
processes), so small functions look heavier than they are: read the shares
as a ranking, not as exact figures.

Before the profiles, a stage table gives exact costs without a profiler:
the caller's CPU time per call (median of rounds) of the mlfoundry id
formula, the canonical data_id, ``Recorder.record`` and a whole
``@capture`` call, each beside the bare function.

Run: python benchmarks/profile_hot_paths.py [--quick] [--results PATH]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import uvloop
from _common import Figure, NullSink, cli, interleave, print_table, save

from mlf_middleware import Recorder
from mlf_middleware.decorator import capture

__all__ = ["main", "profile"]

ROOT = str(Path(__file__).resolve().parent.parent) + "/"


def profile(work: Callable[[], Any], calls: int, top: int = 15) -> list[dict[str, Any]]:
    """Run ``work`` under cProfile; the ``top`` functions by own time."""
    profiler = cProfile.Profile()
    profiler.runcall(work)
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values()) or 1e-12  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        _, ncalls, tottime, cumtime, _ = row
        where = filename.replace(ROOT, "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls_per_outer_call": ncalls / calls,
                "own_us_per_outer_call": tottime / calls * 1e6,
                "cumulative_us_per_outer_call": cumtime / calls * 1e6,
                "own_share": tottime / total,
            }
        )
    rows.sort(key=lambda r: r["own_us_per_outer_call"], reverse=True)
    return rows[:top]


def print_profile(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"  {'own %':>6} {'own µs':>8} {'cum µs':>8} {'calls':>6}  function")
    for r in rows:
        print(
            f"  {r['own_share'] * 100:>5.1f}% {r['own_us_per_outer_call']:>8.2f} "
            f"{r['cumulative_us_per_outer_call']:>8.2f} "
            f"{r['calls_per_outer_call']:>6.1f}  {r['function']}"
        )
    sys.stdout.flush()


def decorator_path(n: int) -> tuple[Callable[[], Any], Recorder]:
    from bench_decorator import predict, rows

    recorder = Recorder(NullSink(), spool_dir=False, max_queue_records=n * 4)
    decorated = capture(recorder=recorder)(predict)
    data = rows(n)

    def work() -> None:
        for row in data:
            decorated(row)

    return work, recorder


def record_path(n: int) -> tuple[Callable[[], Any], Recorder]:
    from bench_decorator import rows

    recorder = Recorder(NullSink(), spool_dir=False, max_queue_records=n * 4)
    output = {"value": "b", "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}}
    data = rows(n)

    def work() -> None:
        for row in data:
            recorder.record(row, output)

    return work, recorder


def batch_path(n: int) -> tuple[Callable[[], Any], Recorder]:
    from bench_batch import CLASSES, frame, predict

    recorder = Recorder(NullSink(), spool_dir=False, max_queue_records=n * 4)
    decorated = capture(recorder=recorder, class_names=CLASSES)(predict)
    df = frame(n)
    return (lambda: decorated(df)), recorder


def middleware_path(n: int) -> tuple[Callable[[], Any], Recorder]:
    import http_apps
    from bench_http import exchange, scope_of

    recorder = Recorder(NullSink(), spool_dir=False, max_queue_records=n * 4)
    app = http_apps.pure(recorder)
    body = http_apps.body()
    scope = scope_of(body)
    loop = uvloop.new_event_loop()

    async def many() -> None:
        for _ in range(n):
            await exchange(app, scope, body)

    return (lambda: loop.run_until_complete(many())), recorder


def stages(n: int, rounds: int) -> dict[str, Any]:
    """Caller's CPU µs per call of each stage, median of interleaved rounds."""
    import json
    import uuid

    from bench_decorator import predict, rows

    from mlf_middleware import hashing

    recorder = Recorder(NullSink(), spool_dir=False, max_queue_records=n * 8)
    decorated = capture(recorder=recorder)(predict)
    output = {"value": "b", "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}}
    data = rows(n)
    steps: dict[str, Callable[[dict], Any]] = {
        "bare predict": predict,
        "mlfoundry id: uuid5(json.dumps(sort_keys))": lambda row: (
            uuid.uuid5(uuid.NAMESPACE_X500, json.dumps(row, sort_keys=True)).hex
        ),
        "canonical data_id: generate_hash_from_data": hashing.generate_hash_from_data,
        "Recorder.record (id, encode, enqueue)": lambda row: recorder.record(
            row, output
        ),
        "@capture call (predict + capture)": decorated,
    }

    def one(step: Callable[[dict], Any]) -> Callable[[], float]:
        def run() -> float:
            started = time.thread_time()
            for row in data:
                step(row)
            spent = time.thread_time() - started
            recorder.flush(60)
            return spent / len(data) * 1e6

        return run

    values = interleave({name: one(step) for name, step in steps.items()}, rounds)
    recorder.close(60)
    return {name: Figure.of(v, "µs/call") for name, v in values.items()}


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    n = 300 if args.quick else 20_000
    paths = {
        "decorator hot path (per call)": (decorator_path, n, n),
        "Recorder.record alone (per call)": (record_path, n, n),
        "batch, 10,000-row DataFrame (per call)": (
            batch_path,
            500 if args.quick else 10_000,
            1,
        ),
        "middleware, one ASGI request (per request)": (
            middleware_path,
            n // 4,
            n // 4,
        ),
    }
    results: dict[str, Any] = {}
    results["stages"] = stages(500 if args.quick else 10_000, 3 if args.quick else 7)
    print_table(
        "stages, caller's CPU time per call",
        list((name, fig, "") for name, fig in results["stages"].items()),
    )
    for title, (make, size, calls) in paths.items():
        work, recorder = make(size)
        work()  # warm up: first-call imports and caches
        recorder.flush(60)
        rows = profile(work, calls)
        recorder.close(60)
        results[title] = rows
        print_profile(title, rows)
    if args.save:
        save("profile", results)


if __name__ == "__main__":
    main()
