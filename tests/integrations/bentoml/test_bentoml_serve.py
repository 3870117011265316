"""capture_service under a real ``bentoml serve`` process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():  # BentoML's own imports warn (pathspec)
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("bentoml")

from bentoml_server import BentoServer

from mlf_middleware.records import Prediction
from mlf_middleware.sinks import SQLiteSink

pytestmark = [pytest.mark.bentoml, pytest.mark.timeout(180)]

HERE = Path(__file__).parent
BENTOML_ERROR = {
    "error": "An unexpected error has occurred, please check the server log."
}

# Three requests of 7, 7 and 6 rows; a = 10 * request + row, b = row.
REQUESTS = [
    [[10 * request + row, row] for row in range(size)]
    for request, size in enumerate((7, 7, 6))
]


@dataclass
class Served:
    """What one run of the server answered, ran and stored."""

    answers: list[httpx.Response]
    failed: httpx.Response
    batches: list[int]
    records: list[Prediction]
    exit_code: int | None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """Serve, send the batch trio and a failing request, stop, read the store."""
    folder = tmp_path_factory.mktemp("bentoml-serve")
    store = folder / "records.db"
    batches = folder / "batches.txt"
    server = BentoServer(
        "bentoml_batch_service:BatchService",
        working_dir=HERE,
        home=folder / "home",
        env={
            "MLF_TEST_SINK": f"sqlite:///{store}",
            "MLF_TEST_BATCHES": str(batches),
            "MLF_SPOOL_DIR": str(folder / "spool"),
        },
    )
    with server:
        answers = asyncio.run(_post_together(f"{server.url}/predict", REQUESTS))
        failed = httpx.post(f"{server.url}/fail", json={"a": 1.5}, timeout=30)

    return Served(
        answers=answers,
        failed=failed,
        batches=[int(line) for line in batches.read_text().split()],
        records=SQLiteSink(store).read_records(),
        exit_code=server.process.returncode if server.process else None,
    )


async def _post_together(url: str, bodies: list[list[list[int]]]) -> list:
    async with httpx.AsyncClient(timeout=60) as client:
        return await asyncio.gather(
            *(client.post(url, json={"rows": rows}) for rows in bodies)
        )


def _predict_records(served: Served) -> list[Prediction]:
    return [r for r in served.records if r.raw_data["api"] == "predict"]


def test_clients_get_their_own_outputs(served: Served) -> None:
    expected = [[100 * a + b for a, b in rows] for rows in REQUESTS]

    assert [answer.status_code for answer in served.answers] == [200, 200, 200]
    assert [answer.json() for answer in served.answers] == expected


def test_dispatcher_merged_and_split_requests(served: Served) -> None:
    assert sum(served.batches) == 20
    assert max(served.batches) <= 10
    assert any(size not in (6, 7) for size in served.batches), served.batches


def test_every_row_recorded_once_with_its_output(served: Served) -> None:
    records = _predict_records(served)
    sent = sorted((a, b) for rows in REQUESTS for a, b in rows)

    assert len(records) == 20
    assert sorted((r.features["a"], r.features["b"]) for r in records) == sent
    assert all(sorted(r.features) == ["a", "b"] for r in records)
    for record in records:
        a, b = record.features["a"], record.features["b"]
        assert record.prediction_data == {"value": 100 * a + b}


def test_batched_records_carry_service_metadata(served: Served) -> None:
    for record in _predict_records(served):
        assert record.raw_data == {
            "framework": "bentoml",
            "service": "BatchService",
            "api": "predict",
            "batched": True,
        }
        assert record.model_version_fqn == "adder:1"
        assert record.latency_ms >= 300


def test_failing_request_recorded_and_answered_as_usual(served: Served) -> None:
    (record,) = [r for r in served.records if r.raw_data["api"] == "fail"]

    assert served.failed.status_code == 500
    assert served.failed.json() == BENTOML_ERROR
    assert record.features == {"a": 1.5}
    assert record.prediction_data == {"value": None, "error": "ValueError"}
    assert (
        record.raw_data["request_id"] == served.failed.headers["x-bentoml-request-id"]
    )


def test_shutdown_flushed_and_exited_cleanly(served: Served) -> None:
    # The recorder waits a minute before writing: only the shutdown hook's
    # flush can have put these 21 records in the store.
    assert len(served.records) == 21
    assert served.exit_code == 0
