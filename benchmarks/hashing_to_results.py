"""Run ``bench_hashing`` and merge its figures into the results file.

``bench_hashing.py`` times the canonical data_id against the mlfoundry
formula and prints a table; this adds its figures, ratios and the SPEC
targets (10 features: at most 2 µs median, at least 4 times faster than
the mlfoundry formula) to ``results.json`` like every other benchmark.

Run: python benchmarks/hashing_to_results.py [--quick] [--results PATH]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench_hashing
from _common import Figure, cli, save, target

__all__ = ["main", "summarise"]

BASELINE = "mlfoundry formula"


def summarise(samples: dict[tuple[str, str], list[float]]) -> dict[str, Any]:
    """Figures per case and contender, with the ratio to the baseline."""
    results: dict[str, Any] = {"baseline": BASELINE, "clock": "wall (timeit)"}
    for (case, name), values in samples.items():
        base = statistics.median(samples[(case, BASELINE)])
        figure = Figure.of(values, "µs/call")
        results.setdefault(case, {})[name] = {
            "per_call": figure,
            "times_faster_than_mlfoundry": base / figure["median"],
        }
    ours = results["10 features"]["canonical"]
    ours["target_us"] = target(
        "canonical data_id of 10 features: at most 2 µs (median)",
        ours["per_call"]["median"],
        bench_hashing.TARGET_US,
    )
    ours["target_ratio"] = target(
        "canonical data_id: at least 4 times faster than the mlfoundry formula",
        ours["times_faster_than_mlfoundry"],
        bench_hashing.TARGET_RATIO,
        at_most=False,
    )
    return results


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    rounds, number = (5, 2_000) if args.quick else (9, 50_000)
    samples = bench_hashing.run(rounds, number)
    print(f"\nhashing, {rounds} rounds; microseconds per call")
    print("\n".join(bench_hashing.table(samples)))
    print(bench_hashing.verdict(samples)[1])
    if args.save:
        save("hashing", summarise(samples))


if __name__ == "__main__":
    main()
