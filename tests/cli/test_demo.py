"""mlf-middleware demo, run as a user runs it: a subprocess in a fresh folder."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("uvicorn")

SCRIPT = Path(sys.executable).with_name("mlf-middleware")
COMMAND = (
    [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "mlf_middleware.cli"]
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "MLF_SPOOL_DIR": str(folder / "spool")}
    env.pop("MLF_SINK", None)
    started = time.monotonic()
    result = subprocess.run(
        [*COMMAND, "demo"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return folder, result, time.monotonic() - started


def _stored(db: Path) -> list[tuple]:
    """(data_id, predicted, actual) per stored prediction, read with SQL."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT p.data_id, json_extract(p.prediction_data, '$.value'), "
            "(SELECT json_extract(a.value, '$') FROM actuals AS a "
            " WHERE a.data_id = p.data_id) FROM predictions AS p"
        ).fetchall()
    finally:
        conn.close()


def test_demo_exits_0_in_well_under_a_minute(demo):
    _, result, seconds = demo

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert seconds < 60


def test_store_holds_one_prediction_per_row_each_with_its_actual(demo):
    folder, result, _ = demo
    sent = int(re.search(r"sending (\d+) held-out rows", result.stdout)[1])

    rows = _stored(folder / "mlf_demo.db")

    assert sent == 171  # the breast-cancer data's 30 % held out
    assert len(rows) == sent
    assert len({data_id for data_id, _, _ in rows}) == sent
    assert all(actual is not None for _, _, actual in rows)


def test_printed_accuracy_is_the_databases(demo):
    folder, result, _ = demo
    rows = _stored(folder / "mlf_demo.db")
    correct = sum(predicted == actual for _, predicted, actual in rows)

    printed = re.search(r"accuracy (\d\.\d{4}) \((\d+) of (\d+)\)", result.stdout)

    assert (int(printed[2]), int(printed[3])) == (correct, len(rows))
    assert printed[1] == f"{correct / len(rows):.4f}"


def test_html_report_is_written_beside_the_database(demo):
    folder, result, _ = demo

    page = (folder / "mlf_demo.html").read_text()

    assert f"HTML report: {folder / 'mlf_demo.html'}" in result.stdout
    assert "breast-cancer-logreg:1" in page
    assert page.count('<svg class="chart"') == 3
