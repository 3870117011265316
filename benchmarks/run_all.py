"""Run every benchmark, each in a fresh process, then summarise the results.

    python benchmarks/run_all.py [--quick] [--results PATH] [--only NAME ...]
                                 [--docs PATH | --no-docs]

Each benchmark merges its section into the results file (default
``benchmarks/results.json``) and prints its own table. At the end this
prints one summary table and every target with its verdict, and (on a full
run) rewrites the block between the markers of ``docs/performance.md``.
Exit status 1 means a benchmark failed to run or its own checks failed (a
missed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

__all__ = ["BENCHMARKS", "main", "markdown", "targets"]

# name -> script (bench_hashing.py prints only: its wrapper saves figures).
BENCHMARKS = {
    "hashing": "hashing_to_results.py",
    "decorator": "bench_decorator.py",
    "batch": "bench_batch.py",
    "http": "bench_http.py",
    "pipeline": "bench_pipeline.py",
    "profile": "profile_hot_paths.py",
}
BEGIN = "<!-- bench:begin (written by benchmarks/run_all.py) -->"
END = "<!-- bench:end -->"


def run(name: str, script: Path, args: argparse.Namespace, results: Path) -> bool:
    """Run one benchmark script; True when it exited cleanly."""
    command = [sys.executable, str(script)]
    if args.quick:
        command.append("--quick")
    env = {
        **os.environ,
        "MLF_BENCH_RESULTS": str(results),
        "BENTOML_DO_NOT_TRACK": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    print(f"=== {name}: exit {done.returncode}, {time.monotonic() - started:.0f} s")
    return done.returncode == 0


def targets(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every target verdict in the results, with where it was found."""
    found = []
    if isinstance(node, dict):
        if {"target", "value", "limit", "met"} <= node.keys():
            return [(path, node)]
        for key, value in node.items():
            found += targets(value, f"{path}.{key}" if path else key)
    return found


def _fig(figure: dict[str, Any] | None, digits: int = 1) -> str:
    if not figure:
        return "n/a"
    low, high = figure["min"], figure["max"]
    return (
        f"{figure['median']:,.{digits}f} ({low:,.{digits}f}..{high:,.{digits}f}) "
        f"{figure['unit']}"
    )


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


Row = tuple[str, str, str, str]


def _hashing_rows(hashing: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, entry in (hashing.get("10 features") or {}).items():
        title = "data_id, 10 features, wall" if not rows else ""
        faster = entry["times_faster_than_mlfoundry"]
        note = "baseline" if name == hashing["baseline"] else f"{faster:.2f}x faster"
        rows.append((title, name, _fig(entry["per_call"], 2), note))
    return rows


def _stage_rows(stages: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    ordered = sorted(stages.items(), key=lambda item: item[1]["median"])
    for index, (name, figure) in enumerate(ordered):
        title = "stages, caller CPU per call" if index == 0 else ""
        rows.append((title, name, _fig(figure, 2), ""))
    return rows


def _decorator_rows(dec: dict[str, Any]) -> list[Row]:
    bare = _get(dec, "bare", "thread", "per_call")
    rows = [("decorator, caller CPU", "bare", _fig(bare, 2), "baseline")]
    for name in ("capture", "mlfoundry", "bentoml.monitor"):
        added = _get(dec, name, "thread", "added")
        if added is None:
            continue
        note = f"{_get(dec, name, 'thread', 'ratio_to_bare'):.1f}x bare"
        cheaper = _get(dec, "capture", f"times_cheaper_than_{name}")
        if cheaper:
            note += f"; capture {cheaper:.1f}x cheaper"
        rows.append(("", f"{name}, added", _fig(added, 2), note))
    return rows


def _batch_rows(batch: dict[str, Any]) -> list[Row]:
    per_row = f"{batch.get('per_row_us', 0):.1f} µs/row"
    bare = _fig(_get(batch, "thread", "bare"))
    added = _fig(_get(batch, "thread", "added"))
    title = f"batch, {batch.get('rows', 0):,} rows, caller CPU"
    return [
        (title, "bare", bare, "baseline"),
        ("", "capture, added", added, per_row),
    ]


def _http_rows(http: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    inproc = http.get("in_process") or {}
    if inproc:
        bare = _get(inproc, "bare", "thread", "per_request")
        rows.append(("middleware in-process, CPU", "bare", _fig(bare), "baseline"))
        for name in ("pure", "basehttp"):
            added = _fig(_get(inproc, name, "thread", "added"))
            rows.append(("", f"{name}, added", added, ""))
    wrk = http.get("wrk") or {}
    if wrk:
        p99 = f"p99 {_fig(_get(wrk, 'bare', 'p99'), 2)}"
        rps = _fig(_get(wrk, "bare", "requests_per_s"), 0)
        rows.append(("middleware under wrk", "bare", rps, p99))
    for name in ("pure", "pure+jsonl", "basehttp"):
        entry = wrk.get(name)
        if not entry:
            continue
        note = (
            f"{entry['rps_ratio']['median']:.2f}x bare req/s; p99 "
            f"{entry['p99_added']['median']:+.2f} ms; server CPU "
            f"+{entry['server_cpu_added']['median']:.0f} µs/req"
        )
        rows.append(("", name, _fig(entry["requests_per_s"], 0), note))
    return rows


def _pipeline_rows(pipe: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for sink in ("memory", "jsonl", "sqlite"):
        cpu, wall = _get(pipe, sink, "cpu"), _get(pipe, sink, "wall")
        if not cpu or not wall:
            continue
        note = (
            f"{cpu['ratio_to_direct']:.2f}x direct write; wall "
            f"{wall['pipeline']['median']:,.0f} rec/s"
        )
        rows.append((f"pipeline to {sink}", "delivery", _fig(cpu["pipeline"], 0), note))
        end = _fig(cpu["end_to_end"], 0)
        rows.append(("", "record() + delivery", end, ""))
    mem = pipe.get("stalled_sink_memory")
    if mem:
        note = (
            f"{mem['ratio_to_budget']:.2f} of budget; no-recorder baseline "
            f"{mem['baseline_growth']['median']:.1f} MiB"
        )
        title = f"memory, {mem['records']:,} records, stalled sink"
        rows.append((title, "peak RSS growth", _fig(mem["peak_rss_growth"]), note))
    return rows


def headline(results: dict[str, Any]) -> list[Row]:
    """The summary rows: benchmark, variant, median (min..max), comparison."""
    rows: list[Row] = []
    if results.get("hashing"):
        rows += _hashing_rows(results["hashing"])
    if results.get("decorator"):
        rows += _decorator_rows(results["decorator"])
    if results.get("batch"):
        rows += _batch_rows(results["batch"])
    if results.get("http"):
        rows += _http_rows(results["http"])
    if results.get("pipeline"):
        rows += _pipeline_rows(results["pipeline"])
    if _get(results, "profile", "stages"):
        rows += _stage_rows(results["profile"]["stages"])
    return rows


def markdown(results: dict[str, Any]) -> str:
    """The summary and the targets as Markdown tables, with the machine."""
    machine = results.get("machine", {})
    load = ", ".join(str(x) for x in machine.get("load_average", []))
    lines = [
        f"Measured {machine.get('measured_at', '?')} on "
        f"{machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), "
        f"Python {machine.get('python', '?')} ({machine.get('platform', '?')}); "
        f"load average at the end: {load}.",
        "",
        "| Benchmark | Variant | Median (min..max) | Compared |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in headline(results)]
    lines += [
        "",
        "| Where | Target | Measured | Limit | Met |",
        "|---|---|---|---|---|",
    ]
    for where, verdict in targets({k: v for k, v in results.items() if k != "machine"}):
        lines.append(
            f"| `{where}` | {verdict['target']} | {verdict['value']:,.2f} | "
            f"{verdict['limit']:,.2f} | {'yes' if verdict['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def update_docs(path: Path, table: str) -> None:
    """Replace the marked block of ``path`` with ``table``."""
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--results", default=str(HERE / "results.json"))
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS))
    parser.add_argument("--docs", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    results_file = Path(args.results).absolute()

    failed = []
    for name, script in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        if not (HERE / script).exists():
            print(f"\n=== {name}: {script} not found, skipped")
            continue
        if not run(name, HERE / script, args, results_file):
            failed.append(name)

    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    table = markdown(results)
    print("\n" + table)
    if not args.quick and not args.no_docs and not args.only:
        update_docs(Path(args.docs), table)
        print(f"updated {args.docs}")
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
