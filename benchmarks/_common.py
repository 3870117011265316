"""What every benchmark shares: timed rounds, a table, results.json.

Figures are medians over rounds, reported with min and max, and as a ratio
to a baseline measured in the same run (these machines are shared and noisy).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Figure", "machine", "measure", "print_table", "save"]

RESULTS = Path(__file__).with_name("results.json")


class Figure(dict):
    """One measured quantity: median, min, max over rounds, and its unit."""

    @classmethod
    def of(cls, values: list[float], unit: str) -> Figure:
        return cls(
            median=statistics.median(values),
            min=min(values),
            max=max(values),
            rounds=len(values),
            unit=unit,
        )


def measure(fn: Callable[[], float], rounds: int) -> list[float]:
    """Run ``fn`` (which returns one round's figure) ``rounds`` times."""
    return [fn() for _ in range(rounds)]


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
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


def save(section: str, data: dict[str, Any]) -> None:
    """Merge one benchmark's figures into benchmarks/results.json."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = machine()
    results[section] = data
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
