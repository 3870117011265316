"""The hashing benchmark runs and reports what it promises (a smoke run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_hashing.py"


def test_quick_benchmark_prints_table_and_verdict():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("5 rounds;")
    rows = [line for line in lines if re.search(r" mlfoundry formula +\d", line)]
    assert len(rows) == 3
    assert lines[-1].startswith("canonical id, 10 features: ")
    assert "faster than the mlfoundry formula" in lines[-1]
