"""What every benchmark shares: timed rounds, targets, a table, results.json.

Figures are medians over rounds, reported with min and max, and as a ratio
to a baseline measured in the same run (these machines are shared and noisy).
Variants compared with each other run interleaved, one of each per round, so
that a burst of load from elsewhere lands on all of them alike.

Where results go: ``--results PATH``, else the ``MLF_BENCH_RESULTS``
environment variable, else ``benchmarks/results.json`` for a full run; a
``--quick`` run (the smoke test) writes only where it is told to.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "CLOCKS",
    "Figure",
    "NullSink",
    "cli",
    "clocked",
    "interleave",
    "machine",
    "measure",
    "print_table",
    "results_path",
    "save",
    "target",
    "timed",
]

RESULTS = Path(__file__).with_name("results.json")
RESULTS_ENV = "MLF_BENCH_RESULTS"


class Figure(dict):
    """One measured quantity: median, min, max over rounds, and its unit."""

    @classmethod
    def of(cls, values: list[float], unit: str) -> Figure:
        if not values:
            raise ValueError("a figure needs at least one round")
        return cls(
            median=statistics.median(values),
            min=min(values),
            max=max(values),
            rounds=len(values),
            unit=unit,
        )


class NullSink:
    """A sink that takes encoded records and keeps nothing: never stalls."""

    name = "null"
    url = "null://"

    def __init__(self) -> None:
        self.written = 0

    def write_wire(self, lines: list[bytes]) -> None:
        self.written += len(lines)

    def write(self, records: list[Any]) -> None:
        self.written += len(records)

    def close(self) -> None:
        pass


def measure(fn: Callable[[], float], rounds: int) -> list[float]:
    """Run ``fn`` (which returns one round's figure) ``rounds`` times."""
    return [fn() for _ in range(rounds)]


def interleave(
    variants: dict[str, Callable[[], Any]], rounds: int
) -> dict[str, list[Any]]:
    """Run every variant once per round, rotating which one goes first."""
    names = list(variants)
    values: dict[str, list[Any]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            values[name].append(variants[name]())
    return values


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` takes, by the wall clock."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


CLOCKS = ("thread", "process", "wall")


def clocked(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """Seconds ``fn()`` takes by three clocks: (thread, process, wall).

    - thread: CPU time of the calling thread, the work the caller pays;
    - process: CPU time of every thread (a recorder's worker too);
    - wall: the wall clock.

    Both CPU clocks leave out the time other processes held the cores,
    which on a busy shared machine is most of the wall clock's noise.
    """
    wall, cpu, mine = time.perf_counter(), time.process_time(), time.thread_time()
    fn()
    return (
        time.thread_time() - mine,
        time.process_time() - cpu,
        time.perf_counter() - wall,
    )


def target(
    description: str, value: float, limit: float, *, at_most: bool = True
) -> dict[str, Any]:
    """A target and whether ``value`` meets it (``<= limit`` or ``>= limit``)."""
    met = value <= limit if at_most else value >= limit
    return {"target": description, "value": value, "limit": limit, "met": met}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """The machine a figure was measured on, and how busy it was."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "load_average": load,
        "measured_at": datetime.datetime.now(datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
    }


def print_table(title: str, rows: list[tuple[str, Figure, str]]) -> None:
    """Print name, median (min..max) unit, and a note such as a ratio."""
    print(f"\n{title}")
    width = max(len(name) for name, _, _ in rows)
    for name, fig, note in rows:
        print(
            f"  {name:<{width}}  {fig['median']:>12,.2f} "
            f"({fig['min']:,.2f}..{fig['max']:,.2f}) {fig['unit']}  {note}"
        )
    sys.stdout.flush()


def results_path() -> Path:
    """Where ``save`` writes: the environment's choice, else results.json."""
    chosen = os.environ.get(RESULTS_ENV)
    return Path(chosen) if chosen else RESULTS


def save(section: str, data: dict[str, Any]) -> None:
    """Merge one benchmark's figures into the results file."""
    path = results_path()
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = machine()
    results[section] = data
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def cli(
    description: str | None,
    extra: Callable[[argparse.ArgumentParser], Any] | None = None,
) -> argparse.Namespace:
    """Parse ``--quick`` and ``--results``; point ``save`` at the results.

    A quick run without ``--results`` (or ``MLF_BENCH_RESULTS``) writes
    nothing, so a smoke run never overwrites the figures of a full one.
    ``extra(parser)`` adds a benchmark's own options.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--results", help="the results file to merge into")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.results:
        os.environ[RESULTS_ENV] = str(Path(args.results).absolute())
    args.save = bool(not args.quick or os.environ.get(RESULTS_ENV))
    return args
