"""Pipeline throughput per sink, and memory against a stalled sink.

Throughput: N pre-encoded records are queued into a Recorder whose sink is
held shut, then the sink is opened and the time until ``flush()`` returns is
taken, so the figure is the delivery side alone (batching, the sink's
writes). The baseline, run interleaved with it, is the same sink's write
called directly with batches of the same size: what the sink itself can do.
End to end (also interleaved) times ``record()`` on the caller's thread for
N/5 rows plus the delivery, which share the interpreter.

Memory: 1,000,000 records go into a recorder whose sink never returns, with
a 64 MiB queue bound (what does not fit spills to the disk spool); the
figure is the peak RSS growth of a fresh process during the loop. Its
baseline is the same loop in a fresh process without a recorder.

Targets: at least 200,000 records/s to JSONL and 100,000 to SQLite; at most
80 MiB peak RSS growth.

Run: python benchmarks/bench_pipeline.py [--quick] [--results PATH]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import orjson
from _common import Figure, cli, clocked, interleave, print_table, save, target

from mlf_middleware import Recorder
from mlf_middleware.records import Prediction, encode, from_wire
from mlf_middleware.sinks import JSONLSink, MemorySink, SQLiteSink

__all__ = ["main"]

FEATURES = {f"f{i}": i * 0.5 for i in range(10)}
OUTPUT = {"value": "b", "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}}
BATCH = 512
TARGETS = {"jsonl": 200_000.0, "sqlite": 100_000.0}
MEMORY_BUDGET_MIB = 80.0


def lines(n: int) -> list[bytes]:
    """``n`` encoded predictions of 10 features, a label, 3 probabilities."""
    return [
        encode(Prediction(f"{i:032x}", {**FEATURES, "f0": i}, OUTPUT)) for i in range(n)
    ]


class Gated:
    """A sink held shut until ``open()``, so a queue can fill before timing."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.name = sink.name
        self.url = getattr(sink, "url", None)
        self.gate = threading.Event()
        if hasattr(sink, "write_wire"):
            self.write_wire = self._write_wire

    def _write_wire(self, batch: list[bytes]) -> None:
        self.gate.wait(300)
        self.sink.write_wire(batch)

    def write(self, records: list[Any]) -> None:
        self.gate.wait(300)
        self.sink.write(records)

    def close(self) -> None:
        self.sink.close()


def makers(folder: Path) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Each sink's name and a factory of fresh instances (fresh files)."""
    counter = iter(range(10**9))
    yield "memory", MemorySink
    yield "jsonl", lambda: JSONLSink(folder / f"jsonl-{next(counter)}")
    yield "sqlite", lambda: SQLiteSink(folder / f"sqlite-{next(counter)}.db")


def rates_of(n: int, seconds: tuple[float, float, float]) -> dict[str, float]:
    """Records per second by the wall clock and per CPU-second of the process.

    On a busy shared machine the second is what the rate would be with the
    cores to itself (for a sink that is not waiting on I/O).
    """
    _, cpu, wall = seconds
    return {"wall": n / wall, "cpu": n / max(cpu, 1e-9)}


def pipeline(make: Callable[[], Any], data: list[bytes]) -> dict[str, float]:
    """Records/s from opening a shut sink to flush() returning."""
    gated = Gated(make())
    recorder = Recorder(
        gated, spool_dir=False, max_queue_records=len(data) + 1, batch_size=BATCH
    )
    for line in data:
        recorder.offer_encoded(line)

    def deliver() -> None:
        gated.gate.set()
        if not recorder.flush(300):
            raise RuntimeError("pipeline flush timed out")

    rates = rates_of(len(data), clocked(deliver))
    stats = recorder.close(30)
    if stats["written"] != len(data):
        raise RuntimeError(f"pipeline wrote {stats['written']} of {len(data)}")
    return rates


def direct(make: Callable[[], Any], data: list[bytes]) -> dict[str, float]:
    """Records/s of the sink's own write, batch after batch, no recorder.

    A sink without ``write_wire`` takes record objects, so decoding the
    bytes into them is timed too: the pipeline has to do it as well.
    """
    sink = make()
    batches = [data[i : i + BATCH] for i in range(0, len(data), BATCH)]
    write_wire = getattr(sink, "write_wire", None)

    def run() -> None:
        for batch in batches:
            if write_wire is not None:
                write_wire(batch)
            else:
                sink.write([from_wire(orjson.loads(line)) for line in batch])

    rates = rates_of(len(data), clocked(run))
    sink.close()
    return rates


def end_to_end(make: Callable[[], Any], n: int) -> dict[str, float]:
    """Records/s of record() for n rows plus their delivery."""
    recorder = Recorder(make(), spool_dir=False, max_queue_records=n + 1)
    rows = [{**FEATURES, "f0": i} for i in range(n)]

    def run() -> None:
        for row in rows:
            recorder.record(row, OUTPUT)
        if not recorder.flush(300):
            raise RuntimeError("end-to-end flush timed out")

    rates = rates_of(n, clocked(run))
    stats = recorder.close(30)
    if stats["written"] != n:
        raise RuntimeError(f"end to end wrote {stats['written']} of {n}")
    return rates


def throughput(n: int, rounds: int) -> tuple[dict[str, Any], list]:
    data = lines(n)
    e2e_n = max(1, n // 5)  # record() is slower: fewer rows, same rounds
    results: dict[str, Any] = {
        "records": n,
        "end_to_end_records": e2e_n,
        "batch_size": BATCH,
    }
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in makers(Path(tmp)):
            values = interleave(
                {
                    "pipeline": lambda make=make: pipeline(make, data),
                    "direct": lambda make=make: direct(make, data),
                    "end_to_end": lambda make=make: end_to_end(make, e2e_n),
                },
                rounds,
            )
            entry: dict[str, Any] = {"clock_for_targets": "cpu"}
            for clock in ("cpu", "wall"):
                unit = "rec/s" if clock == "wall" else "rec/CPU-s"
                entry[clock] = {
                    mode: Figure.of([r[clock] for r in runs], unit)
                    for mode, runs in values.items()
                }
                figures = entry[clock]
                figures["ratio_to_direct"] = (
                    figures["pipeline"]["median"] / figures["direct"]["median"]
                )
                if name in TARGETS:
                    entry[f"target_{clock}"] = target(
                        f"at least {TARGETS[name]:,.0f} records/s "
                        f"(pipeline, median, {clock})",
                        figures["pipeline"]["median"],
                        TARGETS[name],
                        at_most=False,
                    )
            results[name] = entry
            cpu, wall = entry["cpu"], entry["wall"]
            table.append(
                (
                    f"{name} pipeline",
                    cpu["pipeline"],
                    f"{cpu['ratio_to_direct']:.2f}x direct write; wall "
                    f"{wall['pipeline']['median']:,.0f} rec/s",
                )
            )
            table.append(
                (
                    f"{name} direct",
                    cpu["direct"],
                    f"baseline; wall {wall['direct']['median']:,.0f} rec/s",
                )
            )
            table.append(
                (
                    f"{name} end to end",
                    cpu["end_to_end"],
                    f"record() + delivery; wall "
                    f"{wall['end_to_end']['median']:,.0f} rec/s",
                )
            )
    return results, table


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

    def status_kib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])

    def start_kib():
        # Reset the peak so that only the loop's own peak is measured.
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
            return status_kib("VmRSS")
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def peak_kib():
        try:
            return status_kib("VmHWM")
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    n, spool, with_recorder = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    features = {f"f{i}": i * 0.5 for i in range(10)}
    output = {"value": "b", "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}}
    recorder = Recorder(Stalled(), max_queue_bytes=64 * 1024 * 1024,
                        max_queue_records=10_000_000, spool_dir=spool,
                        flush_timeout=1)
    record = recorder.record if with_recorder else (lambda row, out: None)
    record(features, output)  # first-call imports are not the queue's
    before = start_kib()
    for i in range(n):
        record({**features, "f0": i}, output)
    after = peak_kib()
    stats = recorder.stats()
    print((after - before) / 1024, stats["queue_size"], stats["spooled"],
          stats["dropped"], before / 1024)
    """
)


def memory_child(n: int, with_recorder: bool) -> dict[str, float]:
    """Peak RSS growth (MiB) of a fresh process logging n records.

    The growth is the peak resident size during the loop (VmHWM, its peak
    reset just before) minus the resident size before it.
    """
    with tempfile.TemporaryDirectory() as spool:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_CHILD,
                str(n),
                spool,
                str(int(with_recorder)),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        ).stdout.split()
    return {
        "growth_mib": float(out[0]),
        "queue_size": int(out[1]),
        "spooled": int(out[2]),
        "dropped": int(out[3]),
        "rss_before_mib": float(out[4]),
    }


def memory(n: int, rounds: int) -> tuple[dict[str, Any], list]:
    runs = interleave(
        {
            "recorder": lambda: memory_child(n, True),
            "baseline": lambda: memory_child(n, False),
        },
        rounds,
    )
    growth = Figure.of([r["growth_mib"] for r in runs["recorder"]], "MiB")
    base = Figure.of([r["growth_mib"] for r in runs["baseline"]], "MiB")
    last = runs["recorder"][-1]
    budget = MEMORY_BUDGET_MIB * (1 if n >= 1_000_000 else n / 1_000_000)
    results = {
        "records": n,
        "peak_rss_growth": growth,
        "baseline_growth": base,
        "budget_mib": budget,
        "ratio_to_budget": growth["median"] / budget,
        "queue_size": last["queue_size"],
        "spooled": last["spooled"],
        "rss_before_mib": last["rss_before_mib"],
        "dropped": max(r["dropped"] for r in runs["recorder"]),
        "target": target(
            "at most 80 MiB peak RSS growth (median)", growth["median"], budget
        ),
    }
    table = [
        (
            "peak RSS growth",
            growth,
            f"{results['ratio_to_budget']:.2f} of the {budget:.1f} MiB budget; "
            f"queued {last['queue_size']:,}, spooled {last['spooled']:,}",
        ),
        ("same loop, no recorder", base, "baseline"),
    ]
    return results, table


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    n, rounds = (2_000, 1) if args.quick else (100_000, 5)
    mem_n, mem_rounds = (5_000, 1) if args.quick else (1_000_000, 5)

    results, table = throughput(n, rounds)
    print_table(f"pipeline throughput, {n:,} records, {rounds} rounds", table)

    results["stalled_sink_memory"], table = memory(mem_n, mem_rounds)
    print_table(
        f"memory, {mem_n:,} records into a stalled sink, 64 MiB queue, "
        f"{mem_rounds} rounds",
        table,
    )
    if args.save:
        save("pipeline", results)


if __name__ == "__main__":
    main()
