"""@capture on FastAPI routes: the framework still reads and runs them."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest

fastapi = pytest.importorskip("fastapi")
pydantic = pytest.importorskip("pydantic")

from fastapi.testclient import TestClient  # noqa: E402

from mlf_middleware.decorator import capture  # noqa: E402
from mlf_middleware.hashing import generate_hash_from_data  # noqa: E402
from mlf_middleware.recorder import Recorder  # noqa: E402
from mlf_middleware.sinks import MemorySink  # noqa: E402


class Applicant(pydantic.BaseModel):
    age: int
    city: str


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder(MemorySink())
    yield recorder
    recorder.close(timeout=5)


def written(recorder: Recorder) -> list:
    assert recorder.flush(10)
    return recorder.sinks[0].predictions


def test_fastapi_async_route_runs_on_the_event_loop(recorder):
    app = fastapi.FastAPI()
    loops = []

    @app.post("/predict")
    @capture(recorder=recorder, model_version_fqn="loans:2")
    async def predict(applicant: Applicant) -> dict:
        """Score one applicant."""
        loops.append(asyncio.get_running_loop())  # raises in a worker thread
        return {"label": "approve", "probabilities": {"approve": 0.8, "deny": 0.2}}

    with TestClient(app) as client:
        response = client.post("/predict", json={"age": 41, "city": "Oslo"})
    (record,) = written(recorder)

    assert inspect.iscoroutinefunction(predict)
    assert response.status_code == 200
    assert response.json() == {
        "label": "approve",
        "probabilities": {"approve": 0.8, "deny": 0.2},
    }
    assert len(loops) == 1
    assert record.features == {"age": 41, "city": "Oslo"}
    assert record.data_id == generate_hash_from_data({"age": 41, "city": "Oslo"})
    assert record.prediction_data == {
        "value": "approve",
        "probabilities": {"approve": 0.8, "deny": 0.2},
    }
    assert record.model_version_fqn == "loans:2"
    assert record.raw_data == {
        "framework": "python",
        "function": predict.__qualname__,
    }


def test_fastapi_reads_the_signature_of_a_decorated_route(recorder):
    app = fastapi.FastAPI()

    @app.get("/score/{item_id}")
    @capture(recorder=recorder, exclude_args=["item_id"])
    def score(item_id: int, q: float = 0.5) -> dict:
        return {"value": q * 2}

    with TestClient(app) as client:
        response = client.get("/score/3", params={"q": 1.5})
        missing = client.get("/score/not-a-number")
    (record,) = written(recorder)

    assert response.json() == {"value": 3.0}
    assert missing.status_code == 422
    assert record.features == {"q": 1.5}
    assert record.prediction_data == {"value": 3}


def test_fastapi_request_argument_is_not_a_feature(recorder):
    app = fastapi.FastAPI()

    @app.post("/predict")
    @capture(recorder=recorder)
    async def predict(applicant: Applicant, request: fastapi.Request) -> dict:
        return {"value": request.url.path}

    with TestClient(app) as client:
        response = client.post("/predict", json={"age": 41, "city": "Oslo"})
    (record,) = written(recorder)

    assert response.json() == {"value": "/predict"}
    assert record.features == {"age": 41, "city": "Oslo"}  # the one data argument
    assert record.prediction_data == {"value": "/predict"}
