"""Smoke runs of every benchmark: they run and write well-formed figures.

Each benchmark runs once with ``--quick`` (a few hundred calls, one short
wrk run) in a fresh process, writing to a results file of its own. Nothing
here asserts a timing: the machines are shared; ``make bench`` measures.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"

sys.path.insert(0, str(BENCHMARKS))

import run_all  # noqa: E402  (benchmarks/ is a folder of scripts)


def run_quick(script: str, results: Path, *extra: str) -> dict[str, Any]:
    """Run one benchmark with ``--quick``; return the results file's content."""
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("MLF_BENCH_RESULTS", None)
    command = [sys.executable, str(BENCHMARKS / script), "--quick"]
    done = subprocess.run(
        [*command, "--results", str(results), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(results.read_text())


def figures(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every figure (a mapping with a median) in the results, with its path."""
    if not isinstance(node, dict):
        return []
    if "median" in node:
        return [(path, node)]
    found = []
    for key, value in node.items():
        found += figures(value, f"{path}.{key}")
    return found


def assert_well_formed(section: dict[str, Any]) -> None:
    found = figures(section)
    assert found, "no figures"
    for path, figure in found:
        assert set(figure) == {"median", "min", "max", "rounds", "unit"}, path
        values = (figure["min"], figure["median"], figure["max"])
        assert all(isinstance(v, int | float) and math.isfinite(v) for v in values)
        assert figure["min"] <= figure["median"] <= figure["max"], path
        assert figure["rounds"] >= 1, path
        assert isinstance(figure["unit"], str), path
        assert figure["unit"], path
    for path, verdict in run_all.targets(section):
        assert isinstance(verdict["met"], bool), path
        assert math.isfinite(verdict["value"]), path


def test_hashing_results_compare_with_the_mlfoundry_formula(tmp_path):
    results = run_quick("hashing_to_results.py", tmp_path / "r.json")

    section = results["hashing"]
    assert_well_formed(section)
    ours = section["10 features"]["canonical"]
    assert ours["times_faster_than_mlfoundry"] > 0
    assert {"target_us", "target_ratio"} <= ours.keys()


def test_decorator_benchmark_compares_capture_with_its_peers(tmp_path):
    results = run_quick("bench_decorator.py", tmp_path / "r.json")

    section = results["decorator"]
    assert_well_formed(section)
    assert {"bare", "capture", "mlfoundry"} <= section.keys()
    assert section["capture"]["thread"]["added"]["unit"] == "µs/call"
    assert section["checks"]["problems"] == []
    assert "target_added" in section["capture"]
    assert ("bentoml.monitor" in section) != ("bentoml_missing" in section)
    assert results["machine"]["cores"] >= 1


def test_profile_lists_stages_and_hot_functions(tmp_path):
    results = run_quick("profile_hot_paths.py", tmp_path / "r.json")

    section = results["profile"]
    assert_well_formed(section["stages"])
    assert len(section["stages"]) == 5
    paths = [key for key in section if key != "stages"]
    assert len(paths) == 4
    for path in paths:
        assert section[path], path
        assert {"function", "own_share", "own_us_per_outer_call"} <= set(
            section[path][0]
        )


@pytest.fixture(scope="module")
def batch_results(tmp_path_factory) -> dict[str, Any]:
    """One quick batch run, shared by the tests that read its results."""
    return run_quick("bench_batch.py", tmp_path_factory.mktemp("batch") / "r.json")


def test_batch_benchmark_times_a_dataframe_call(batch_results):
    section = batch_results["batch"]
    assert_well_formed(section)
    assert section["rows"] == 500
    assert section["checks"]["problems"] == []
    assert section["thread"]["added"]["unit"] == "ms/call"


def test_http_benchmark_measures_in_process_and_under_wrk(tmp_path):
    extra = () if shutil.which("wrk") else ("--in-process-only",)

    results = run_quick("bench_http.py", tmp_path / "r.json", *extra)

    section = results["http"]
    assert_well_formed(section)
    assert section["problems"] == []
    assert {"bare", "pure", "basehttp"} <= section["in_process"].keys()
    if not extra:
        wrk = section["wrk"]
        assert {"bare", "pure", "pure+jsonl", "basehttp"} <= wrk.keys()
        assert wrk["bare"]["requests"] > 0


def test_pipeline_benchmark_measures_every_sink_and_memory(tmp_path):
    results = run_quick("bench_pipeline.py", tmp_path / "r.json")

    section = results["pipeline"]
    assert_well_formed(section)
    assert {"memory", "jsonl", "sqlite", "stalled_sink_memory"} <= section.keys()
    assert section["stalled_sink_memory"]["dropped"] == 0


def test_summary_lists_the_figures_and_targets(batch_results, tmp_path):
    table = run_all.markdown(batch_results)

    assert "| batch, 500 rows, caller CPU | bare |" in table
    assert "| `batch.target_added` | at most 50 ms added per 500-row call" in table
    docs = tmp_path / "performance.md"
    docs.write_text(f"# Performance\n\n{run_all.BEGIN}\nold\n{run_all.END}\nafter\n")
    run_all.update_docs(docs, table)
    text = docs.read_text()
    assert "old" not in text
    assert text.startswith("# Performance\n\n")
    assert text.endswith(f"{run_all.END}\nafter\n")
    assert table in text
