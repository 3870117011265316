"""Shared fixtures: every test gets its own working folder and spool folder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep stray default stores and spools inside the test's folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLF_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("MLF_SINK", raising=False)
    monkeypatch.delenv("MLF_DISABLED", raising=False)
    monkeypatch.delenv("MLF_ACTUALS_TOKEN", raising=False)
