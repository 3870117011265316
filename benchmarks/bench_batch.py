"""Batch capture: a 10,000-row DataFrame through a decorated function.

The function returns, per row, a label and three class probabilities (a
``(labels, probabilities)`` pair of arrays, labelled by ``class_names``).
Bare and decorated calls run interleaved; the recorder's sink keeps nothing
and is flushed between rounds, outside the timing, so each figure is the
work on the caller's thread: rows from the frame, outputs paired with them,
10,000 data_ids, encodings and queue hand-offs.

Target: at most 50 ms added on the caller's thread per 10,000-row call.

Run: python benchmarks/bench_batch.py [--quick] [--results PATH]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import pandas as pd
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
from mlf_middleware.decorator import capture

__all__ = ["frame", "main", "predict"]

CLASSES = ("a", "b", "c")


def frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """``rows`` rows of 10 float features named f0..f9."""
    values = np.random.default_rng(seed).normal(size=(rows, 10))
    return pd.DataFrame(values, columns=[f"f{i}" for i in range(10)])


def predict(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in model: labels and a row of 3 probabilities per row."""
    scores = df.to_numpy()[:, :3]
    probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    labels = np.array(CLASSES)[probabilities.argmax(axis=1)]
    return labels, probabilities


def one_call(fn: Callable[[pd.DataFrame], Any], df: pd.DataFrame):
    """One round: one call; returns milliseconds by each clock."""

    def run() -> tuple[float, ...]:
        return tuple(s * 1e3 for s in clocked(lambda: fn(df)))

    return run


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    n, rounds = (500, 3) if args.quick else (10_000, 9)
    df = frame(n)
    recorder = Recorder(NullSink(), spool_dir=False, max_queue_records=n * 2 + 10)
    decorated = capture(recorder=recorder, class_names=CLASSES)(predict)

    def captured() -> tuple[float, ...]:
        figures = one_call(decorated, df)()
        recorder.flush(120)  # outside the timing: the next round starts empty
        return figures

    one_call(predict, df)()
    captured()  # warm up
    values = interleave({"bare": one_call(predict, df), "capture": captured}, rounds)
    stats = recorder.close(60)

    results, table = summarise(values, n)
    calls = rounds + 1
    problems = []
    if stats["written"] != n * calls or stats["dropped"]:
        problems.append(f"capture wrote {stats['written']} of {n * calls}: {stats}")
    results["checks"] = {
        "written": stats["written"],
        "dropped": stats["dropped"],
        "problems": problems,
    }
    print_table(
        f"batch capture, {n:,}-row DataFrame x 10 features, {rounds} rounds "
        "(caller's CPU time)",
        table,
    )
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    if args.save:
        save("batch", results)
    if problems:
        sys.exit(1)


def summarise(values: dict[str, list[tuple[float, ...]]], n: int):
    """Figures per clock; the target on the caller's CPU time."""
    results: dict[str, Any] = {"rows": n, "clock_for_targets": "thread"}
    for index, clock in enumerate(CLOCKS):
        bare = [r[index] for r in values["bare"]]
        mine = [r[index] for r in values["capture"]]
        results[clock] = {
            "bare": Figure.of(bare, "ms/call"),
            "capture": Figure.of(mine, "ms/call"),
            "added": Figure.of(
                [c - b for c, b in zip(mine, bare, strict=True)], "ms/call"
            ),
        }
        results[clock]["ratio_to_bare"] = (
            results[clock]["capture"]["median"] / results[clock]["bare"]["median"]
        )
    thread = results["thread"]
    added = thread["added"]["median"]
    results["per_row_us"] = added / n * 1e3
    results["target_added"] = target(
        f"at most 50 ms added per {n:,}-row call (caller's CPU)",
        added,
        50.0 * n / 10_000,
    )
    table = [
        ("bare", thread["bare"], "baseline"),
        ("capture", thread["capture"], f"{thread['ratio_to_bare']:.1f}x bare"),
        (
            "capture added",
            thread["added"],
            f"{results['per_row_us']:.2f} µs/row; wall "
            f"{results['wall']['added']['median']:.1f} ms added",
        ),
    ]
    return results, table


if __name__ == "__main__":
    main()
