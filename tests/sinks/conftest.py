"""Sink test fixtures; under ``CI=true`` a skipped sink test fails the run.

A sink whose library or server is missing skips its tests on a laptop, but
in CI that would hide a whole sink (PostgreSQL above all), so there every
skip in this folder, at collection or in a test, is reported as a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Generator

import pytest
from support.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server", "postgres_url"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _failed_skip(report: pytest.BaseReport) -> None:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true, where no sink test may be skipped: {reason}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _failed_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if _in_ci() and report.skipped:
        _failed_skip(report)
    return report


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A TCP URL (with password) whose tables are fresh for this test."""
    return postgres_server.url(table_prefix=f"t{secrets.token_hex(4)}_")
