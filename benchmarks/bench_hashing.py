"""Time the canonical data_id against the mlfoundry formula, side by side.

Run ``python benchmarks/bench_hashing.py`` (``--quick`` for a smoke run).
Each round times every contender on every case, interleaved, so machine
noise hits them alike; the table shows the median, min and max per call
over the rounds and the ratio to the mlfoundry formula's median.
Target (SPEC section 10): canonical id of 10 features <= 2 us median and
>= 4x faster than the mlfoundry formula.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlf_middleware.hashing import (
    data_id_of_normalized,
    generate_hash_from_data,
    normalize,
)

TARGET_US = 2.0
TARGET_RATIO = 4.0


def mlfoundry_formula(features: dict) -> str:
    """mlfoundry's data_id, as it computes it."""
    return uuid.uuid5(uuid.NAMESPACE_X500, json.dumps(features, sort_keys=True)).hex


def recorder_path(features: dict) -> str:
    """What the recorder runs: normalise once, then hash the tree."""
    return data_id_of_normalized(normalize(features, path="features"))


CONTENDERS: dict[str, Callable[[dict], str]] = {
    "mlfoundry formula": mlfoundry_formula,
    "canonical": generate_hash_from_data,
    "normalize + data_id_of_normalized": recorder_path,
}


def make_row(count: int, *, seed: int = 0, integral: bool = False) -> dict[str, Any]:
    """Return a flat row of mixed floats, ints and strings."""
    rng = random.Random(seed)
    row: dict[str, Any] = {}
    for i in range(count):
        kind = i % 3
        if kind == 0:
            value = float(rng.randint(0, 90)) if integral else rng.uniform(-1e3, 1e3)
        elif kind == 1:
            value = rng.randint(0, 10_000)
        else:
            value = f"category_{rng.randint(0, 20)}"
        row[f"feature_{i}"] = value
    if integral:
        row["feature_1"] = None
    return row


CASES = {
    "10 features": make_row(10),
    "100 features": make_row(100),
    "10 features, integral floats and None": make_row(10, integral=True),
}


def time_per_call(function: Callable[[dict], str], row: dict, number: int) -> float:
    """Return microseconds per call over ``number`` calls."""
    seconds = timeit.timeit(lambda: function(row), number=number)
    return seconds / number * 1e6


def run(rounds: int, number: int) -> dict[tuple[str, str], list[float]]:
    """Time every (case, contender) pair once per round, interleaved."""
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for case, row in CASES.items():
            calls = max(1, number // max(1, len(row) // 10))
            for name, function in CONTENDERS.items():
                micros = time_per_call(function, row, calls)
                samples.setdefault((case, name), []).append(micros)

    return samples


def table(samples: dict[tuple[str, str], list[float]]) -> list[str]:
    """Format one line per (case, contender)."""
    header = (
        f"{'case':40} {'contender':34} {'median':>9} {'min':>9} {'max':>9} "
        f"{'vs mlf':>7}"
    )
    lines = [header, "-" * len(header)]
    for case in CASES:
        base = statistics.median(samples[(case, "mlfoundry formula")])
        for name in CONTENDERS:
            values = samples[(case, name)]
            median = statistics.median(values)
            lines.append(
                f"{case:40} {name:34} {median:8.3f}u {min(values):8.3f}u "
                f"{max(values):8.3f}u {base / median:6.2f}x"
            )

    return lines


def verdict(samples: dict[tuple[str, str], list[float]]) -> tuple[bool, str]:
    """Check the SPEC target on the 10-feature case."""
    ours = statistics.median(samples[("10 features", "canonical")])
    base = statistics.median(samples[("10 features", "mlfoundry formula")])
    ratio = base / ours
    ok = ours <= TARGET_US and ratio >= TARGET_RATIO
    text = (
        f"canonical id, 10 features: {ours:.3f} us median "
        f"(target <= {TARGET_US} us), {ratio:.2f}x faster than the mlfoundry "
        f"formula at {base:.3f} us (target >= {TARGET_RATIO}x): "
        f"{'PASS' if ok else 'MISS'}"
    )
    return ok, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (>= 5)")
    parser.add_argument("--check", action="store_true", help="exit 1 on a miss")
    args = parser.parse_args(argv)

    rounds = args.rounds or (5 if args.quick else 9)
    number = 2_000 if args.quick else 50_000
    if rounds < 5:
        parser.error("--rounds must be at least 5")

    samples = run(rounds, number)
    version = sys.version.split()[0]
    print(f"{rounds} rounds; microseconds per call (u); Python {version}")
    print("\n".join(table(samples)))
    ok, text = verdict(samples)
    print(text)

    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
