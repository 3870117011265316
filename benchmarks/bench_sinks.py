"""Records per second per sink, end to end through a Recorder.

    python benchmarks/bench_sinks.py [--quick] [--records N] [--rounds R]
                                     [--postgres-url URL] [--sink NAME ...]

Each round logs N predictions (10 features, a label and 3 probabilities)
with ``Recorder.record`` and waits for ``flush``. Two figures per sink:

- end to end: N divided by the time from the first call to the end of the
  flush, so it counts the caller's work (data_id, encoding) and the writes,
  which share the interpreter;
- pipeline: the sink is held shut while the N records are queued, then
  opened; N divided by the time until the flush returns, so it counts what
  the Recorder's worker and the sink do (batching, writing), nothing else.

Medians of the rounds are printed, with the slowest round. PostgreSQL uses
``--postgres-url`` or, when absent, a throwaway server started like the
tests' one (skipped when the server binaries are missing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from mlf_middleware import Recorder
from mlf_middleware.sinks import open_sink

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


def rows(n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """N distinct feature rows with a label and three probabilities."""
    out = []
    for i in range(n):
        features = {f"f{k}": (i * 31 + k) % 997 / 7.0 for k in range(10)}
        features["f0"] = i
        output = {
            "value": ("a", "b", "c")[i % 3],
            "probabilities": {"a": 0.5, "b": 0.3, "c": 0.2},
        }
        out.append((features, output))
    return out


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str | None]:
    """The given URL, or a throwaway server's, or None when there is none."""
    if url:
        yield url
        return
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from support.postgres import running_server
    except ImportError:
        yield None
        return
    try:
        with running_server() as server:
            yield server.url()
    except BaseException as exc:  # pytest.skip raises a BaseException
        if type(exc).__name__ != "Skipped":
            raise
        yield None


def sink_urls(folder: Path, pg_url: str | None) -> dict[str, Callable[[int], str]]:
    """Sink name -> URL for round ``r`` (a fresh target per round)."""
    urls: dict[str, Callable[[int], str]] = {
        "memory": lambda r: "memory://",
        "stdout": lambda r: "stdout://",
        "jsonl": lambda r: f"jsonl:///{folder}/jsonl-{r}",
        "jsonl-gzip": lambda r: f"jsonl:///{folder}/jsonlgz-{r}?gzip=true",
        "sqlite": lambda r: f"sqlite:///{folder}/s-{r}.db",
        "parquet": lambda r: f"parquet:///{folder}/lake-{r}",
        "parquet-nofsync": lambda r: f"parquet:///{folder}/lakenf-{r}?fsync=false",
    }
    if pg_url:
        sep = "&" if "?" in pg_url else "?"
        urls["postgres"] = lambda r: f"{pg_url}{sep}table_prefix=bench{r}_"
    return urls


class Gate:
    """Hold a sink's writes until ``open`` is set (keeps its fast path)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "gated")
        self.open = threading.Event()
        if hasattr(inner, "write_wire"):
            self.write_wire = self._write_wire

    def write(self, records: Any) -> None:
        self.open.wait()
        self.inner.write(records)

    def _write_wire(self, lines: Any) -> None:
        self.open.wait()
        self.inner.write_wire(lines)

    def close(self) -> None:
        self.inner.close()


Rows = list[tuple[dict[str, Any], dict[str, Any]]]


def one_round(url: str, data: Rows, *, gated: bool) -> float:
    gate = Gate(open_sink(url))
    if not gated:
        gate.open.set()
    rec = Recorder(
        gate,
        batch_size=512,
        max_queue_records=len(data) + 1,
        max_queue_bytes=1 << 30,
        spool_dir=False,
    )
    try:
        start = time.perf_counter()
        for features, output in data:
            rec.record(features, output)
        if gated:
            start = time.perf_counter()
            gate.open.set()
        if not rec.flush(600):
            raise RuntimeError(f"{url}: flush timed out")
        elapsed = time.perf_counter() - start
    finally:
        stats = rec.close(60)
    if stats["written"] != len(data):
        raise RuntimeError(f"{url}: wrote {stats['written']} of {len(data)}")
    return len(data) / elapsed


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    saved = sys.stdout
    with open(os.devnull, "w") as sink:
        sys.stdout = sink
        try:
            yield
        finally:
            sys.stdout = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 records a round")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--sink", action="append", default=None, help="only these")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (the figure is a median)")
    n = args.records or (2_000 if args.quick else 20_000)
    data = rows(n)

    print(f"{n} records a round, {args.rounds} rounds, records/s")
    print(
        f"{'sink':<16} {'end-to-end':>11} {'(slowest)':>10} "
        f"{'pipeline':>11} {'(slowest)':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp, postgres(args.postgres_url) as pg:
        for name, url_of in sink_urls(Path(tmp), pg).items():
            if args.sink and name not in args.sink:
                continue
            figures = []
            for gated in (False, True):
                rates = []
                for r in range(args.rounds):
                    url = url_of(r + args.rounds * gated)
                    with quiet_stdout() if name == "stdout" else nullcontext():
                        rates.append(one_round(url, data, gated=gated))
                figures += [statistics.median(rates), min(rates)]
            print(
                f"{name:<16} {figures[0]:>11,.0f} {figures[1]:>10,.0f} "
                f"{figures[2]:>11,.0f} {figures[3]:>10,.0f}",
                flush=True,
            )
        if pg is None:
            print("postgres         skipped (no server binaries, no --postgres-url)")

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
