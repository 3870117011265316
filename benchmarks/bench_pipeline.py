"""Pipeline throughput per sink, and memory against a stalled sink.

Throughput: N pre-encoded records offered to a Recorder, timed until flush()
returns, so the figure is the delivery side alone; the baseline is the same
sink's write() called directly with the whole batch (what the sink itself
can do). End to end adds record() on the caller's thread.

Memory: records go into a recorder whose sink never returns, with a 64 MiB
queue bound; the figure is the peak RSS growth of a fresh process.

Run: python benchmarks/bench_pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import Figure, measure, print_table, save, timed

from mlf_middleware import Recorder
from mlf_middleware.records import Prediction, encode
from mlf_middleware.sinks import JSONLSink, MemorySink, SQLiteSink

FEATURES = {f"f{i}": i * 0.5 for i in range(10)}


def lines(n: int) -> list[bytes]:
    return [
        encode(Prediction(f"{i:032x}", FEATURES, {"value": i % 3})) for i in range(n)
    ]


def sinks(folder: Path, n: int):
    yield "memory", lambda: MemorySink()
    yield "jsonl", lambda: JSONLSink(folder / f"jsonl-{n}-{id(object())}")
    yield "sqlite", lambda: SQLiteSink(folder / f"s-{n}-{id(object())}.db")


def through_recorder(make, data: list[bytes]) -> float:
    recorder = Recorder(make(), spool_dir=False, max_queue_records=len(data) + 1)

    def run():
        for line in data:
            recorder.offer_encoded(line)
        assert recorder.flush(120)

    seconds = timed(run)
    recorder.close(10)
    return len(data) / seconds


def direct(make, data: list[bytes], batch: int = 512) -> float:
    sink = make()
    write = getattr(sink, "write_wire", None)
    records = None
    if write is None:
        import orjson

        from mlf_middleware.records import from_wire

        records = [from_wire(orjson.loads(x)) for x in data]

    def run():
        for start in range(0, len(data), batch):
            if write is not None:
                write(data[start : start + batch])
            else:
                sink.write(records[start : start + batch])

    seconds = timed(run)
    sink.close()
    return len(data) / seconds


def end_to_end(make, n: int) -> float:
    recorder = Recorder(make(), spool_dir=False, max_queue_records=n + 1)

    def run():
        for i in range(n):
            recorder.record({**FEATURES, "i": i}, {"value": i % 3})
        assert recorder.flush(120)

    seconds = timed(run)
    recorder.close(10)
    return n / seconds


MEMORY_CHILD = textwrap.dedent(
    """
    import resource, sys, threading
    from mlf_middleware import Recorder

    class Stalled:
        name = "stalled"
        def write(self, records):
            threading.Event().wait()  # never returns: a hung sink
        def close(self):
            pass

    n, spool = int(sys.argv[1]), sys.argv[2]
    features = {f"f{i}": i * 0.5 for i in range(10)}
    recorder = Recorder(Stalled(), max_queue_bytes=64 * 1024 * 1024,
                        max_queue_records=10_000_000, spool_dir=spool)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(n):
        recorder.record({**features, "i": i}, {"value": i % 3})
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = recorder.stats()
    assert stats["dropped"] == 0, stats
    print((after - before) / 1024, stats["queue_size"], stats["spooled"])
    """
)


def memory(n: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as spool:
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(n), spool],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    n, rounds, mem_n = (2_000, 1, 20_000) if args.quick else (100_000, 5, 1_000_000)
    data = lines(n)
    results = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in sinks(Path(tmp), n):
            piped = Figure.of(
                measure(lambda: through_recorder(make, data), rounds), "rec/s"
            )
            base = Figure.of(measure(lambda: direct(make, data), rounds), "rec/s")
            e2e = Figure.of(measure(lambda: end_to_end(make, n), rounds), "rec/s")
            ratio = piped["median"] / base["median"]
            results[name] = {
                "pipeline": piped,
                "direct": base,
                "end_to_end": e2e,
                "ratio_to_direct": ratio,
            }
            rows.append((f"{name} pipeline", piped, f"{ratio:.2f} of direct write"))
            rows.append((f"{name} direct", base, "baseline"))
            rows.append((f"{name} end to end", e2e, "record() + delivery"))
    print_table(f"pipeline throughput, {n:,} records", rows)

    growth = [memory(mem_n) for _ in range(1 if args.quick else 3)]
    fig = Figure.of([g[0] for g in growth], "MiB")
    results["memory"] = {
        "records": mem_n,
        "peak_rss_growth": fig,
        "queue_size": growth[-1][1],
        "spooled": growth[-1][2],
    }
    print_table(
        f"memory, {mem_n:,} records into a stalled sink, 64 MiB queue",
        [
            (
                "peak RSS growth",
                fig,
                f"queued {growth[-1][1]:,}, spooled {growth[-1][2]:,}",
            )
        ],
    )
    if not args.quick:
        save("pipeline", results)
    _ = resource


if __name__ == "__main__":
    main()
