"""@capture end to end: every input and output shape gives exact records."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pydantic
import pytest

from mlf_middleware.decorator import capture, last_data_ids
from mlf_middleware.hashing import generate_hash_from_data
from mlf_middleware.recorder import Recorder
from mlf_middleware.sinks import MemorySink


@dataclasses.dataclass
class House:
    rooms: int
    area: float


class Applicant(pydantic.BaseModel):
    age: int
    city: str


class Classifier:
    """Stands in for a fitted scikit-learn classifier."""

    classes_ = np.array([0, 1])


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder(MemorySink())
    yield recorder
    recorder.close(timeout=5)


def written(recorder: Recorder) -> list:
    assert recorder.flush(5)
    return recorder.sinks[0].predictions


# Each input shape, the rows it must give (as stored: normalised JSON).
INPUTS = [
    ("mapping", {"a": 1, "b": "x"}, [{"a": 1, "b": "x"}]),
    ("dataclass", House(3, 72.5), [{"rooms": 3, "area": 72.5}]),
    ("pydantic model", Applicant(age=30, city="Oslo"), [{"age": 30, "city": "Oslo"}]),
    ("list of mappings", [{"a": 1}, {"a": 2}], [{"a": 1}, {"a": 2}]),
    (
        "DataFrame",
        pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]}),
        [{"a": 1.5, "b": "x"}, {"a": 2.5, "b": "y"}],
    ),
    (
        "2-D array",
        np.array([[1, 2], [3, 4]]),
        [{"f0": 1, "f1": 2}, {"f0": 3, "f1": 4}],
    ),
    (
        "float32 2-D array",
        np.array([[0.5, 0.25]], dtype=np.float32),
        [{"f0": 0.5, "f1": 0.25}],
    ),
    ("1-D array", np.array([1.0, 2.0, 3.0]), [{"f0": 1, "f1": 2, "f2": 3}]),
    ("list of numbers", [1, 2.5], [{"f0": 1, "f1": 2.5}]),
]


@pytest.mark.parametrize(
    ("argument", "rows"),
    [case[1:] for case in INPUTS],
    ids=[case[0] for case in INPUTS],
)
def test_input_shape_gives_one_record_per_row(recorder, argument, rows):
    @capture(recorder=recorder)
    def predict(data):
        return list(range(len(rows))) if len(rows) > 1 else "only"

    predict(argument)
    records = written(recorder)

    assert [r.features for r in records] == rows
    assert [r.data_id for r in records] == [generate_hash_from_data(r) for r in rows]
    assert last_data_ids() == [r.data_id for r in records]
    expected = (
        [{"value": i} for i in range(len(rows))]
        if len(rows) > 1
        else [{"value": "only"}]
    )
    assert [r.prediction_data for r in records] == expected


def test_data_id_is_taken_before_the_model_casts(recorder):
    raw = {"x": np.float32(0.1)}

    capture(lambda f: 1, recorder=recorder)(raw)
    (record,) = written(recorder)

    assert record.data_id == generate_hash_from_data(raw)
    assert record.data_id != generate_hash_from_data({"x": 0.1})


def test_feature_names_name_array_columns(recorder):
    @capture(recorder=recorder, feature_names=["rooms", "area"])
    def predict(data):
        return np.array([10.0, 20.0])

    predict(np.array([[3, 70.0], [4, 90.0]]))

    assert [(r.features, r.prediction_data) for r in written(recorder)] == [
        ({"rooms": 3, "area": 70}, {"value": 10}),
        ({"rooms": 4, "area": 90}, {"value": 20}),
    ]


def test_exclude_args_and_self_leave_one_data_argument(recorder):
    class Service:
        @capture(recorder=recorder, exclude_args=["context"])
        def predict(self, payload, context=None):
            return "ok"

    Service().predict({"q": 1}, context={"user": "u1"})

    assert [r.features for r in written(recorder)] == [{"q": 1}]


# Each output shape for one row, and the prediction_data it must give.
ONE_ROW_OUTPUTS = [
    ("int", 1, {}, {"value": 1}),
    ("numpy int", np.int64(3), {}, {"value": 3}),
    ("numpy float", np.float32(0.5), {}, {"value": 0.5}),
    ("string", "cat", {}, {"value": "cat"}),
    ("one-item array", np.array([7]), {}, {"value": 7}),
    ("value mapping", {"value": 2}, {}, {"value": 2}),
    ("prediction mapping", {"prediction": 2.5}, {}, {"value": 2.5}),
    (
        "label and scores",
        {"label": "b", "scores": {"a": 0.1, "b": 0.9}},
        {},
        {"value": "b", "probabilities": {"a": 0.1, "b": 0.9}},
    ),
    (
        "shap values",
        {"value": 1, "shap_values": {"a": 0.25}},
        {},
        {"value": 1, "shap_values": {"a": 0.25}},
    ),
    (
        "pair",
        ("b", {"a": 0.1, "b": 0.9}),
        {},
        {"value": "b", "probabilities": {"a": 0.1, "b": 0.9}},
    ),
    (
        "probability row with class_names",
        np.array([0.1, 0.9]),
        {"class_names": ["cat", "dog"]},
        {"value": "dog", "probabilities": {"cat": 0.1, "dog": 0.9}},
    ),
    (
        "probability row with model classes",
        np.array([[0.75, 0.25]]),
        {"model": Classifier()},
        {"value": 0, "probabilities": {"0": 0.75, "1": 0.25}},
    ),
    ("predictions envelope", {"predictions": [4]}, {}, {"value": 4}),
]


@pytest.mark.parametrize(
    ("result", "options", "expected"),
    [case[1:] for case in ONE_ROW_OUTPUTS],
    ids=[case[0] for case in ONE_ROW_OUTPUTS],
)
def test_output_shape_for_one_row(recorder, result, options, expected):
    capture(lambda features: result, recorder=recorder, **options)({"a": 1})

    (record,) = written(recorder)

    assert record.prediction_data == expected


BATCH = [{"a": 1}, {"a": 2}]
PROBA = np.array([[0.25, 0.75], [0.5, 0.5]])

# Each output shape for a batch of two rows.
BATCH_OUTPUTS = [
    ("list", [1, 0], {}, [{"value": 1}, {"value": 0}]),
    ("tuple", ("x", "y"), {}, [{"value": "x"}, {"value": "y"}]),
    ("array", np.array([1.5, 0.5]), {}, [{"value": 1.5}, {"value": 0.5}]),
    ("predictions envelope", {"predictions": [1, 0]}, {}, [{"value": 1}, {"value": 0}]),
    (
        "mappings",
        [{"label": "x", "probabilities": {"x": 1.0}}, {"label": "y"}],
        {},
        [{"value": "x", "probabilities": {"x": 1.0}}, {"value": "y"}],
    ),
    (
        "probabilities with class_names",
        PROBA,
        {"class_names": ["no", "yes"]},
        [
            {"value": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
            {"value": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
        ],
    ),
    (
        "probabilities with model classes",
        PROBA,
        {"model": Classifier()},
        [
            {"value": 1, "probabilities": {"0": 0.25, "1": 0.75}},
            {"value": 0, "probabilities": {"0": 0.5, "1": 0.5}},
        ],
    ),
    (
        "labels and probabilities",
        (np.array([1, 0]), PROBA),
        {"model": Classifier()},
        [
            {"value": 1, "probabilities": {"0": 0.25, "1": 0.75}},
            {"value": 0, "probabilities": {"0": 0.5, "1": 0.5}},
        ],
    ),
]


@pytest.mark.parametrize(
    ("result", "options", "expected"),
    [case[1:] for case in BATCH_OUTPUTS],
    ids=[case[0] for case in BATCH_OUTPUTS],
)
def test_output_shape_for_a_batch(recorder, result, options, expected):
    capture(lambda batch: result, recorder=recorder, **options)(BATCH)

    records = written(recorder)

    assert [r.features for r in records] == BATCH
    assert [r.prediction_data for r in records] == expected


def test_scikit_learn_classifier_end_to_end(recorder):
    datasets = pytest.importorskip("sklearn.datasets")
    tree = pytest.importorskip("sklearn.tree")
    x, y = datasets.load_iris(return_X_y=True, as_frame=True)
    model = tree.DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)

    @capture(recorder=recorder, model=model)
    def predict(frame):
        return model.predict_proba(frame)

    batch = x.iloc[[0, 50, 100]]
    probabilities = predict(batch)
    records = written(recorder)

    assert [r.features for r in records] == batch.to_dict(orient="records")
    assert [r.prediction_data["value"] for r in records] == [0, 1, 2]
    assert [r.prediction_data["probabilities"] for r in records] == [
        {str(label): float(p) for label, p in zip(model.classes_, row, strict=True)}
        for row in probabilities
    ]


def test_large_dataframe_is_captured(recorder):
    frame = pd.DataFrame(
        np.arange(20_000, dtype=np.float64).reshape(2_000, 10),
        columns=[f"c{i}" for i in range(10)],
    )

    capture(lambda f: np.zeros(len(f)), recorder=recorder)(frame)
    records = written(recorder)

    assert len(records) == 2_000
    assert records[-1].features == frame.iloc[-1].to_dict()
    assert last_data_ids()[0] == generate_hash_from_data(frame.iloc[0].to_dict())


def test_function_changing_its_input_changes_no_record(recorder):
    @capture(recorder=recorder)
    def predict(features):
        features.pop("user")
        return 1

    row = {"user": "u1", "x": 2}
    predict(row)
    (record,) = written(recorder)

    assert row == {"x": 2}
    assert record.features == {"user": "u1", "x": 2}
    assert record.data_id == generate_hash_from_data({"user": "u1", "x": 2})
