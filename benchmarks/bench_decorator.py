"""Decorator hot path: what recording one prediction costs the caller.

A predict function takes a 10-feature dict and returns a label with three
class probabilities. Four variants run interleaved, one of each per round:

- bare: the function alone (the baseline);
- capture: ``@capture`` on a running Recorder whose sink keeps nothing, so
  the figure is the caller's work (data_id, snapshot, enqueue) plus whatever
  the background thread takes from it through the GIL;
- bentoml.monitor: the same fields logged with BentoML's default exporter
  (JSON lines written by a logging handler in the request path);
- mlfoundry: its id formula, ``uuid5(NAMESPACE_X500, json.dumps(features,
  sort_keys=True)).hex``, and a ``queue.Queue`` put drained by a thread.

``bentoml.monitor`` runs outside a service: its context manager only needs
BentoML's configuration container, whose defaults enable monitoring with the
default exporter. Only ``log_path`` is set (through ``monitor_options``, the
documented parameter) so files land in a temporary folder.

Targets: at most 5 µs added per call (median), at least 8 times cheaper than
``bentoml.monitor``.

Run: python benchmarks/bench_decorator.py [--quick] [--results PATH]
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
sys.path.insert(0, str(Path(__file__).parent))

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

__all__ = ["main", "predict", "rows"]

CLASSES = ("a", "b", "c")


def rows(n: int) -> list[dict[str, float]]:
    """``n`` distinct 10-feature rows (distinct so no id is ever reused)."""
    return [{f"f{j}": (i + 1) * 0.37 + j for j in range(10)} for i in range(n)]


def predict(features: dict[str, float]) -> dict[str, Any]:
    """A stand-in model: a label and three class probabilities."""
    total = features["f0"] + features["f9"]
    label = CLASSES[int(total) % 3]
    return {"label": label, "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}}


def loop(
    fn: Callable[[dict], Any],
    data: list[dict],
    settle: Callable[[], Any] = lambda: None,
) -> Callable[[], tuple[float, ...]]:
    """One round: every row through ``fn``, then ``settle()`` (the variant's
    background work, which must not spill into the next variant's round).

    Returns µs per call by each clock of ``clocked``.
    """

    def run() -> tuple[float, ...]:
        def calls() -> None:
            for row in data:
                fn(row)
            settle()

        return tuple(s / len(data) * 1e6 for s in clocked(calls))

    return run


def with_capture(recorder: Recorder) -> Callable[[dict], Any]:
    return capture(recorder=recorder)(predict)


def with_bentoml(log_path: str) -> Callable[[dict], Any] | None:
    """predict logging the same fields through ``bentoml.monitor``."""
    try:
        import bentoml
    except ImportError:
        return None
    options = {"log_path": log_path}

    def monitored(features: dict[str, float]) -> dict[str, Any]:
        with bentoml.monitor("bench", monitor_options=options) as mon:
            for name, value in features.items():
                mon.log(value, name=name, role="feature", data_type="numerical")
            result = predict(features)
            mon.log(
                result["label"],
                name="label",
                role="prediction",
                data_type="categorical",
            )
            for name, value in result["probabilities"].items():
                mon.log(
                    value,
                    name=f"p_{name}",
                    role="prediction",
                    data_type="numerical",
                )
        return result

    return monitored


class MlfoundryStyle:
    """mlfoundry's way: its id formula, then a put on an unbounded queue."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self.taken = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while self.queue.get() is not None:
            self.taken += 1
            self.queue.task_done()

    def __call__(self, features: dict[str, float]) -> dict[str, Any]:
        result = predict(features)
        data_id = uuid.uuid5(
            uuid.NAMESPACE_X500, json.dumps(features, sort_keys=True)
        ).hex
        self.queue.put((data_id, dict(features), result))
        return result

    def close(self) -> None:
        self.queue.put(None)
        self._thread.join(10)


def bentoml_lines(log_path: str) -> int:
    """How many data lines bentoml.monitor wrote (a check it really ran)."""
    total = 0
    for path in Path(log_path).glob("bench/data/data.*.log*"):
        with path.open("rb") as handle:
            total += sum(1 for _ in handle)
    return total


def main() -> None:
    args = cli(__doc__.splitlines()[0])
    n, rounds = (500, 3) if args.quick else (10_000, 9)
    data = rows(n)
    recorder = Recorder(NullSink(), spool_dir=False, max_queue_records=n * 4)
    mlfoundry = MlfoundryStyle()
    with tempfile.TemporaryDirectory() as log_path:
        variants = {
            "bare": loop(predict, data),
            "capture": loop(with_capture(recorder), data, lambda: recorder.flush(60)),
            "mlfoundry": loop(mlfoundry, data, mlfoundry.queue.join),
        }
        monitored = with_bentoml(log_path)
        if monitored is not None:
            variants["bentoml.monitor"] = loop(monitored, data)
        for run in variants.values():  # warm up: imports, first files
            run()
        recorder.flush(30)

        values = interleave(variants, rounds)
        recorder.flush(30)
        stats = recorder.close(30)
        mlfoundry.close()
        written_by_bentoml = bentoml_lines(log_path)

    calls = n * (rounds + 1)
    problems = check_recorded(
        stats, calls, mlfoundry.taken, written_by_bentoml, monitored is not None
    )
    results, rows_ = summarise(values)
    results["calls_per_round"] = n
    results["checks"] = {
        "capture_written": stats["written"],
        "capture_dropped": stats["dropped"],
        "mlfoundry_taken": mlfoundry.taken,
        "bentoml_lines": written_by_bentoml,
        "problems": problems,
    }
    if monitored is None:
        results["bentoml_missing"] = "bentoml is not installed: pip install bentoml"
    print_table(
        f"decorator hot path, {n:,} calls per round, {rounds} rounds "
        "(caller's CPU time)",
        rows_,
    )
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    if args.save:
        save("decorator", results)
    if problems:
        sys.exit(1)


def check_recorded(
    stats: dict[str, Any],
    calls: int,
    taken: int,
    bentoml_written: int,
    with_bentoml_: bool,
) -> list[str]:
    """Each variant must have done its work, or its figure means nothing."""
    problems = []
    if stats["written"] != calls or stats["dropped"]:
        problems.append(f"capture wrote {stats['written']} of {calls}: {stats}")
    if taken != calls:
        problems.append(f"mlfoundry queue took {taken} of {calls}")
    if with_bentoml_ and bentoml_written < calls:
        problems.append(f"bentoml.monitor wrote {bentoml_written} of {calls}")
    return problems


def figures(
    rounds_: list[tuple[float, ...]], bare: list[tuple[float, ...]]
) -> dict[str, Any]:
    """Per clock: per-call figure, time added to bare, ratio to bare.

    The added time is paired by round (variant minus bare of the same
    round), so a slow round weighs on both sides.
    """
    entry: dict[str, Any] = {}
    for index, clock in enumerate(CLOCKS):
        mine = [r[index] for r in rounds_]
        base = [r[index] for r in bare]
        per_call = Figure.of(mine, "µs/call")
        entry[clock] = {
            "per_call": per_call,
            "added": Figure.of(
                [v - b for v, b in zip(mine, base, strict=True)], "µs/call"
            ),
            "ratio_to_bare": per_call["median"] / Figure.of(base, "")["median"],
        }
    return entry


def summarise(values: dict[str, list[tuple[float, ...]]]) -> tuple[dict, list]:
    """Figures of every variant; targets on the caller's CPU time."""
    results: dict[str, Any] = {
        "clock_for_targets": "thread",
        "clocks": {
            "thread": "CPU time of the calling thread",
            "process": "CPU time of the whole process, background work settled",
            "wall": "wall clock, background work settled",
        },
    }
    table = []
    for name, rounds_ in values.items():
        entry = figures(rounds_, values["bare"])
        results[name] = entry
        mine = entry["thread"]
        if name == "bare":
            table.append(("bare", mine["per_call"], "baseline"))
            continue
        table.append(
            (
                f"{name} added",
                mine["added"],
                f"{mine['ratio_to_bare']:.1f}x bare; process CPU "
                f"{entry['process']['added']['median']:.2f}, wall "
                f"{entry['wall']['added']['median']:.2f} µs added",
            )
        )

    capture_ = results["capture"]
    added = capture_["thread"]["added"]["median"]
    capture_["target_added"] = target(
        "at most 5 µs added per call (median, caller's CPU)", added, 5.0
    )
    for peer in ("bentoml.monitor", "mlfoundry"):
        if peer not in results:
            continue
        cheaper = results[peer]["thread"]["added"]["median"] / max(added, 1e-9)
        capture_[f"times_cheaper_than_{peer}"] = cheaper
        table.append((f"capture vs {peer}", Figure.of([cheaper], "x"), "times cheaper"))
    if "bentoml.monitor" in results:
        capture_["target_vs_bentoml"] = target(
            "at least 8 times cheaper than bentoml.monitor",
            capture_["times_cheaper_than_bentoml.monitor"],
            8.0,
            at_most=False,
        )
    return results, table


if __name__ == "__main__":
    main()
