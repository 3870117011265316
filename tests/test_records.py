from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from mlf_middleware import Actual, MLFError, Prediction
from mlf_middleware.records import encode, from_wire


def test_empty_data_id_names_the_field():
    with pytest.raises(ValueError, match="data_id") as info:
        Prediction(data_id="", features={"a": 1}, prediction_data={"value": 1})

    assert isinstance(info.value, MLFError)


def test_non_mapping_features_names_the_field():
    with pytest.raises(ValueError, match="features"):
        Prediction(data_id="x", features=[1, 2], prediction_data={"value": 1})


@pytest.mark.parametrize(
    ("prediction_data", "message"),
    [
        ({}, "'value'"),
        ({"value": None}, "only with an 'error'"),
        ([1], "prediction_data must be a mapping"),
        ({"value": 1, "probabilities": [0.1]}, "probabilities"),
    ],
)
def test_bad_prediction_data_names_the_problem(prediction_data, message):
    with pytest.raises(ValueError, match=message):
        Prediction(data_id="x", features={}, prediction_data=prediction_data)


def test_value_none_is_allowed_with_an_error():
    p = Prediction("x", {}, {"value": None, "error": "ValueError"})

    assert p.prediction_data["error"] == "ValueError"


def test_naive_occurred_at_is_taken_as_utc():
    p = Prediction("x", {}, {"value": 1}, occurred_at=datetime(2024, 1, 1, 12))
    q = Prediction(
        "x",
        {},
        {"value": 1},
        occurred_at=datetime(2024, 1, 1, 17, 30, tzinfo=timezone(timedelta(hours=5.5))),
    )

    assert p.occurred_at == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert q.occurred_at.tzinfo == UTC
    assert q.occurred_at == p.occurred_at


def test_record_ids_are_unique():
    ids = {Actual("x", 1).record_id for _ in range(1000)}

    assert len(ids) == 1000


def test_wire_form_round_trips():
    p = Prediction(
        "d1",
        {"a": 1.5, "b": float("nan")},
        {"value": "cat", "probabilities": {"cat": 0.75, "dog": 0.25}},
        occurred_at=datetime(2024, 1, 1, 12, 0, 0, 5, tzinfo=UTC),
        raw_data={"path": "/predict"},
        model_version_fqn="m:1",
        latency_ms=1.25,
        record_id="r1",
    )

    wire = orjson.loads(encode(p))

    assert wire == {
        "type": "prediction",
        "schema": 1,
        "record_id": "r1",
        "data_id": "d1",
        "model_version_fqn": "m:1",
        "occurred_at": "2024-01-01T12:00:00.000005Z",
        "features": {"a": 1.5, "b": "NaN"},
        "prediction_data": {
            "value": "cat",
            "probabilities": {"cat": 0.75, "dog": 0.25},
        },
        "raw_data": {"path": "/predict"},
        "latency_ms": 1.25,
        "actual_value": None,
    }
    back = from_wire(wire)
    assert back.record_id == "r1"
    assert back.occurred_at == p.occurred_at
    assert back.features == {"a": 1.5, "b": "NaN"}


def test_actual_wire_form():
    a = Actual("d1", 3, occurred_at=datetime(2024, 1, 2, tzinfo=UTC), record_id="r2")

    assert orjson.loads(encode(a)) == {
        "type": "actual",
        "schema": 1,
        "record_id": "r2",
        "data_id": "d1",
        "model_version_fqn": None,
        "occurred_at": "2024-01-02T00:00:00.000000Z",
        "value": 3,
    }


WIRE_VALUES = [
    {"a": 1, "b": "x", "c": 1.5, "d": True},
    {"a": None, "b": float("nan")},
    {"a": float("inf"), "b": [1, None, float("-inf")]},
    {"text with null": "null", "n": None},
    {1: "non-str key", "b": b"bytes"},
    {"big": 2**70, "neg": -(2**64)},
    {"lone": "\ud800", "ok": "é"},
    {"d": datetime(2024, 1, 1, tzinfo=UTC)},
]


@pytest.mark.parametrize("features", WIRE_VALUES)
def test_fast_wire_encoding_equals_the_normalised_form(features):
    from mlf_middleware import hashing
    from mlf_middleware.records import encode_wire

    wire = {
        "type": "prediction",
        "record_id": "r",
        "features": features,
        "raw_data": None,
        "prediction_data": {"value": features},
    }
    expected = {
        **wire,
        "features": hashing.normalize(features, path="features"),
        "prediction_data": {"value": hashing.normalize(features)},
    }

    assert orjson.loads(encode_wire(wire)) == orjson.loads(hashing.dumps(expected))


def test_numpy_values_take_the_normalised_form():
    np = pytest.importorskip("numpy")
    from mlf_middleware.records import encode_wire

    wire = {"features": {"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(2)}}

    assert orjson.loads(encode_wire(wire)) == {
        "features": {"a": 0.5, "b": 3, "c": [0, 1]}
    }
