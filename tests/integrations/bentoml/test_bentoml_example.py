"""examples/bentoml_service.py serves and records a prediction (bentoml serve)."""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():  # BentoML's own imports warn (pathspec)
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("bentoml")
    pytest.importorskip("sklearn")

from bentoml_server import BentoServer

from mlf_middleware.sinks import SQLiteSink

pytestmark = [pytest.mark.bentoml, pytest.mark.timeout(180)]

EXAMPLES = Path(__file__).parents[3] / "examples"
SPECIES = ["setosa", "versicolor", "virginica"]


def test_example_serves_and_records_each_flower(tmp_path: Path) -> None:
    store = tmp_path / "iris.db"
    flowers = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    server = BentoServer(
        "bentoml_service:IrisClassifier",
        working_dir=EXAMPLES,
        home=tmp_path / "home",
        env={"MLF_SINK": f"sqlite:///{store}", "MLF_SPOOL_DIR": str(tmp_path)},
    )

    with server:
        answer = httpx.post(
            f"{server.url}/classify", json={"measurements": flowers}, timeout=30
        )
    records = SQLiteSink(store).read_records()

    assert answer.status_code == 200
    assert [flower["label"] for flower in answer.json()] == ["setosa", "virginica"]
    assert [r.features for r in records] == [
        dict(
            zip(
                ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                flower,
                strict=True,
            )
        )
        for flower in flowers
    ]
    for record, flower in zip(records, answer.json(), strict=True):
        assert record.prediction_data == {
            "value": flower["label"],
            "probabilities": flower["probabilities"],
        }
        assert sorted(record.prediction_data["probabilities"]) == SPECIES
        assert record.model_version_fqn == "iris-logreg:1"
        assert record.raw_data == {
            "framework": "bentoml",
            "service": "IrisClassifier",
            "api": "classify",
            "batched": True,
        }
