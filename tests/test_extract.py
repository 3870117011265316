"""extract: every shape users send or return, mapped to rows and outputs."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import sys

import numpy as np
import pandas as pd
import pydantic
import pytest

from mlf_middleware.exceptions import InvalidRecord, MLFError
from mlf_middleware.extract import (
    CallParameters,
    outputs_for_rows,
    outputs_from_body,
    prediction_data,
    rows_from_body,
    rows_from_call,
    rows_from_value,
)


@dataclasses.dataclass
class Flower:
    sepal: float
    petal: float


class Applicant(pydantic.BaseModel):
    age: int
    city: str


class Open(pydantic.BaseModel, extra="allow"):
    age: int


class Classifier:
    """Stands in for a fitted scikit-learn classifier."""

    classes_ = np.array([0, 1, 2])


# --------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------

BODIES = [
    ("object", {"a": 1, "b": "x"}, None, [{"a": 1, "b": "x"}]),
    ("empty object", {}, None, [{}]),
    ("list of objects", [{"a": 1}, {"a": 2}], None, [{"a": 1}, {"a": 2}]),
    ("empty list", [], None, []),
    (
        "list of arrays",
        [[1, 2], [3, 4]],
        None,
        [{"f0": 1, "f1": 2}, {"f0": 3, "f1": 4}],
    ),
    ("list of numbers", [1, 2.5], None, [{"f0": 1, "f1": 2.5}]),
    ("named list", [1, 2.5], ["x", "y"], [{"x": 1, "y": 2.5}]),
    (
        "instances of objects",
        {"instances": [{"a": 1}, {"a": 2}]},
        None,
        [{"a": 1}, {"a": 2}],
    ),
    (
        "instances of arrays",
        {"instances": [[1, 2], [3, 4]]},
        None,
        [{"f0": 1, "f1": 2}, {"f0": 3, "f1": 4}],
    ),
    (
        "named instances",
        {"instances": [[1, 2]]},
        ["x", "y"],
        [{"x": 1, "y": 2}],
    ),
    ("instances of scalars", {"instances": [5, 6]}, None, [{"f0": 5}, {"f0": 6}]),
    (
        "instances beside signature_name",
        {"signature_name": "serving", "instances": [{"a": 1}]},
        None,
        [{"a": 1}],
    ),
    ("inputs of objects", {"inputs": [{"a": 1}]}, None, [{"a": 1}]),
    ("inputs of arrays", {"inputs": [[1, 2]]}, None, [{"f0": 1, "f1": 2}]),
    (
        "columnar inputs",
        {"inputs": {"a": [1, 2], "b": ["x", "y"]}},
        None,
        [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
    ),
    (
        "inputs of one row",
        {"inputs": {"a": 1, "b": [1, 2]}},
        None,
        [{"a": 1, "b": [1, 2]}],
    ),
    (
        "dataframe_split",
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}},
        None,
        [{"a": 1, "b": 2}, {"a": 3, "b": 4}],
    ),
    (
        "dataframe_split with index",
        {"dataframe_split": {"index": [7], "columns": ["a"], "data": [[1]]}},
        None,
        [{"a": 1}],
    ),
    (
        "dataframe_split without columns",
        {"dataframe_split": {"data": [[1, 2]]}},
        ["x", "y"],
        [{"x": 1, "y": 2}],
    ),
    (
        "dataframe_records",
        {"dataframe_records": [{"a": 1}, {"a": 2}]},
        None,
        [{"a": 1}, {"a": 2}],
    ),
    ("features object", {"features": {"a": 1}}, None, [{"a": 1}]),
    (
        "features list is a plain row",
        {"features": [1, 2]},
        None,
        [{"features": [1, 2]}],
    ),
    (
        "envelope key beside others is a plain row",
        {"instances": [1], "user": "u1"},
        None,
        [{"instances": [1], "user": "u1"}],
    ),
]


@pytest.mark.parametrize(
    ("body", "names", "expected"),
    [case[1:] for case in BODIES],
    ids=[case[0] for case in BODIES],
)
def test_rows_from_body_maps_each_shape(body, names, expected):
    assert rows_from_body(body, feature_names=names) == expected


def test_rows_from_body_keeps_a_plain_object_without_copying():
    body = {"a": 1}

    (row,) = rows_from_body(body)

    assert row is body


BAD_BODIES = [
    ("number", 3, None, "request body is a number"),
    ("string", "x", None, "request body is a string"),
    ("null", None, None, "request body is a null"),
    ("mixed array", [1, "a"], None, "must hold objects, arrays or numbers"),
    ("objects and numbers", [{"a": 1}, 2], None, "must hold objects"),
    ("instances not a list", {"instances": 3}, None, "instances must be a JSON array"),
    ("inputs a string", {"inputs": "x"}, None, "inputs must be a JSON array"),
    (
        "uneven columns",
        {"inputs": {"a": [1], "b": [1, 2]}},
        None,
        "inputs: columns have different lengths [1, 2]",
    ),
    (
        "split row too long",
        {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}},
        None,
        "dataframe_split.data[0] has 2 values for 1 names",
    ),
    (
        "split not an object",
        {"dataframe_split": [1]},
        None,
        "dataframe_split must be a JSON object",
    ),
    (
        "split data missing",
        {"dataframe_split": {"columns": ["a"]}},
        None,
        "dataframe_split.data must be a JSON array",
    ),
    (
        "split row not an array",
        {"dataframe_split": {"data": [5]}},
        None,
        "dataframe_split.data[0] is not an array",
    ),
    (
        "feature_names too short",
        {"instances": [[1, 2]]},
        ["x"],
        "instances[0] has 2 values for 1 names",
    ),
]


@pytest.mark.parametrize(
    ("body", "names", "message"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_rows_from_body_names_what_it_cannot_map(body, names, message):
    with pytest.raises(InvalidRecord) as error:
        rows_from_body(body, feature_names=names)

    assert message in str(error.value)
    assert isinstance(error.value, MLFError)
    assert isinstance(error.value, ValueError)


def test_rows_from_body_errors_never_quote_values():
    with pytest.raises(InvalidRecord) as error:
        rows_from_body("secret-value")

    assert "secret" not in str(error.value)


# --------------------------------------------------------------------------
# Response bodies
# --------------------------------------------------------------------------

RESPONSES = [
    ("scalar", 3, 1, None, [{"value": 3}]),
    ("string", "cat", 1, None, [{"value": "cat"}]),
    ("object with value", {"value": 1}, 1, None, [{"value": 1}]),
    ("object with prediction", {"prediction": 1.5}, 1, None, [{"value": 1.5}]),
    (
        "label and probabilities",
        {"label": "a", "probabilities": {"a": 0.9, "b": 0.1}},
        1,
        None,
        [{"value": "a", "probabilities": {"a": 0.9, "b": 0.1}}],
    ),
    (
        "scores list named by class_names",
        {"label": "b", "scores": [0.2, 0.8]},
        1,
        ["a", "b"],
        [{"value": "b", "probabilities": {"a": 0.2, "b": 0.8}}],
    ),
    (
        "probabilities without a value",
        {"probabilities": {"a": 0.3, "b": 0.7}},
        1,
        None,
        [{"value": "b", "probabilities": {"a": 0.3, "b": 0.7}}],
    ),
    (
        "shap values and error",
        {"value": 1, "shap_values": {"a": 0.5}, "error": "Timeout"},
        1,
        None,
        [{"value": 1, "shap_values": {"a": 0.5}, "error": "Timeout"}],
    ),
    ("unknown object is the value", {"y": 2}, 1, None, [{"value": {"y": 2}}]),
    (
        "value and probabilities pair",
        ["a", {"a": 0.9, "b": 0.1}],
        1,
        None,
        [{"value": "a", "probabilities": {"a": 0.9, "b": 0.1}}],
    ),
    ("list per row", [1, 0], 2, None, [{"value": 1}, {"value": 0}]),
    ("one-item list", [7], 1, None, [{"value": 7}]),
    ("predictions", {"predictions": [1, 0]}, 2, None, [{"value": 1}, {"value": 0}]),
    (
        "predictions beside metadata",
        {"predictions": [1], "model_version": "3"},
        1,
        None,
        [{"value": 1}],
    ),
    (
        "predictions of probabilities",
        {"predictions": [[0.1, 0.9], [0.8, 0.2]]},
        2,
        ["no", "yes"],
        [
            {"value": "yes", "probabilities": {"no": 0.1, "yes": 0.9}},
            {"value": "no", "probabilities": {"no": 0.8, "yes": 0.2}},
        ],
    ),
    (
        "predictions of arrays without class_names",
        {"predictions": [[0.1, 0.9]]},
        1,
        None,
        [{"value": [0.1, 0.9]}],
    ),
    (
        "predictions of objects",
        {"predictions": [{"label": "x"}, {"label": "y"}]},
        2,
        None,
        [{"value": "x"}, {"value": "y"}],
    ),
    (
        "columnar predictions",
        {"predictions": {"label": ["x", "y"]}},
        2,
        None,
        [{"value": "x"}, {"value": "y"}],
    ),
    (
        "columnar outputs with scores",
        {"outputs": {"scores": [[0.4, 0.6]]}},
        1,
        None,
        [{"value": 1, "probabilities": {"0": 0.4, "1": 0.6}}],
    ),
    (
        "instances envelope",
        {"instances": [{"value": 1}, {"value": 2}]},
        2,
        None,
        [{"value": 1}, {"value": 2}],
    ),
    ("no rows", [1, 2], 0, None, []),
]


@pytest.mark.parametrize(
    ("body", "n_rows", "class_names", "expected"),
    [case[1:] for case in RESPONSES],
    ids=[case[0] for case in RESPONSES],
)
def test_outputs_from_body_maps_each_shape(body, n_rows, class_names, expected):
    assert outputs_from_body(body, n_rows, class_names=class_names) == expected


@pytest.mark.parametrize(
    ("body", "n_rows"),
    [
        ([1, 2, 3], 2),
        ([1, 2], 1),
        ({"predictions": [1]}, 2),
        ({"label": "a"}, 2),
        (5, 3),
        ({"instances": [{"a": 1}]}, 2),
    ],
)
def test_outputs_from_body_gives_none_when_counts_disagree(body, n_rows):
    assert outputs_from_body(body, n_rows) is None


def test_outputs_from_body_rejects_probabilities_unlike_class_names():
    with pytest.raises(InvalidRecord, match="2 values but 3 class names"):
        outputs_from_body({"scores": [0.5, 0.5]}, 1, class_names=["a", "b", "c"])


# --------------------------------------------------------------------------
# One row's output
# --------------------------------------------------------------------------


def test_prediction_data_names_shap_list_by_row_features():
    data = prediction_data(
        {"value": 1, "shap_values": np.array([0.5, -0.5])}, row={"a": 1, "b": 2}
    )

    assert data == {"value": 1, "shap_values": {"a": 0.5, "b": -0.5}}


def test_prediction_data_labels_are_always_strings():
    data = prediction_data(
        (np.int64(1), np.array([0.25, 0.75])),
        class_names=[np.int64(0), np.float64(1.0)],
    )

    assert data == {"value": np.int64(1), "probabilities": {"0": 0.25, "1": 0.75}}
    assert all(type(label) is str for label in data["probabilities"])


def test_prediction_data_labels_bools_as_json_does():
    data = prediction_data({"probabilities": {True: 0.6, False: 0.4}})

    assert data == {"value": True, "probabilities": {"true": 0.6, "false": 0.4}}


def test_prediction_data_rejects_scores_of_another_kind():
    with pytest.raises(InvalidRecord, match="probabilities must be a mapping"):
        prediction_data({"value": 1, "scores": 0.5})


# --------------------------------------------------------------------------
# One data argument
# --------------------------------------------------------------------------

VALUES = [
    ("mapping", {"a": 1}, None, [{"a": 1}]),
    ("dataclass", Flower(1.0, 2.0), None, [{"sepal": 1.0, "petal": 2.0}]),
    (
        "pydantic model",
        Applicant(age=30, city="Oslo"),
        None,
        [{"age": 30, "city": "Oslo"}],
    ),
    ("pydantic extra fields", Open(age=3, tag="x"), None, [{"age": 3, "tag": "x"}]),
    (
        "list of mappings",
        [{"a": 1}, {"a": 2}],
        None,
        [{"a": 1}, {"a": 2}],
    ),
    (
        "list of models",
        [Applicant(age=1, city="A"), Flower(1.0, 2.0)],
        None,
        [{"age": 1, "city": "A"}, {"sepal": 1.0, "petal": 2.0}],
    ),
    ("list of numbers", [1, 2.5], None, [{"f0": 1, "f1": 2.5}]),
    ("tuple of numbers", (1, 2), ["x", "y"], [{"x": 1, "y": 2}]),
    ("list of lists", [[1, 2], [3, 4]], None, [{"f0": 1, "f1": 2}, {"f0": 3, "f1": 4}]),
    ("list of strings", ["a", "b"], None, [{"data": ["a", "b"]}]),
    ("empty list", [], None, []),
    ("1-D array", np.array([1.5, 2.5]), None, [{"f0": 1.5, "f1": 2.5}]),
    ("named 1-D array", np.array([1, 2]), ["x", "y"], [{"x": 1, "y": 2}]),
    (
        "2-D array",
        np.array([[1, 2], [3, 4]]),
        None,
        [{"f0": 1, "f1": 2}, {"f0": 3, "f1": 4}],
    ),
    (
        "named 2-D array",
        np.array([[1.0, 2.0]], dtype=np.float32),
        ["x", "y"],
        [{"x": 1.0, "y": 2.0}],
    ),
    ("0-D array", np.array(5), None, [{"data": 5}]),
    (
        "DataFrame",
        pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        None,
        [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
    ),
    ("Series", pd.Series({"a": 1, "b": 2}), None, [{"a": 1, "b": 2}]),
    ("string", "hello", None, [{"data": "hello"}]),
    ("number", 3.5, None, [{"data": 3.5}]),
]


@pytest.mark.parametrize(
    ("value", "names", "expected"),
    [case[1:] for case in VALUES],
    ids=[case[0] for case in VALUES],
)
def test_rows_from_value_maps_each_shape(value, names, expected):
    assert rows_from_value(value, name="data", feature_names=names) == expected


def test_rows_from_value_gives_python_numbers_for_numeric_arrays():
    rows = rows_from_value(np.array([[np.float32(0.1)]]))

    assert rows == [{"f0": float(np.float32(0.1))}]
    assert type(rows[0]["f0"]) is float


def test_rows_from_value_keeps_numpy_values_of_other_dtypes():
    stamps = np.array(["2024-01-01T00:00"], dtype="datetime64[ns]")

    (row,) = rows_from_value(stamps)

    assert row == {"f0": stamps[0]}
    assert isinstance(row["f0"], np.datetime64)


def test_rows_from_value_keys_higher_arrays_by_name():
    images = np.zeros((2, 2, 2))

    rows = rows_from_value(images, name="images")

    assert [list(row) for row in rows] == [["images"], ["images"]]
    assert rows[0]["images"].shape == (2, 2)


@pytest.mark.parametrize(
    ("value", "names", "message"),
    [
        (np.zeros((1, 3)), ["a", "b"], "data has 3 columns for 2 names"),
        (np.zeros(3), ["a"], "data has 3 values for 1 names"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), None, "duplicate column names"),
    ],
)
def test_rows_from_value_names_what_does_not_fit(value, names, message):
    with pytest.raises(InvalidRecord, match=message):
        rows_from_value(value, name="data", feature_names=names)


# --------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------


def predict(x, y=2, *rest, scale=1, **options):
    return x


class Model:
    def predict(self, features, request=None):
        return features


def test_call_parameters_name_positional_varargs_and_keywords():
    parameters = CallParameters.of(predict, exclude=["scale"])

    arguments = parameters.data_arguments((1, 2, 3, 4), {"scale": 5, "z": 6})

    assert arguments == {"x": 1, "y": 2, "rest[0]": 3, "rest[1]": 4, "z": 6}


def test_call_parameters_of_a_bound_call_skip_self():
    parameters = CallParameters.of(Model.predict, bound=True, exclude=["request"])

    assert parameters.names == ("features", "request")
    assert parameters.data_arguments(({"a": 1}, "req"), {}) == {"features": {"a": 1}}


def test_call_parameters_never_count_self_or_cls():
    parameters = CallParameters.of(Model.predict)

    assert parameters.data_arguments(("obj", {"a": 1}), {}) == {"features": {"a": 1}}


def test_call_parameters_without_a_signature_number_arguments():
    parameters = CallParameters.of(max)  # a builtin without a signature

    assert parameters.data_arguments((1, 2), {}) == {"arg0": 1, "arg1": 2}


def test_call_parameters_exclude_all_varargs_by_their_name():
    parameters = CallParameters.of(predict, exclude=["rest"])

    assert parameters.data_arguments((1, 2, 3), {}) == {"x": 1, "y": 2}


def test_call_parameters_of_partial_name_the_remaining_arguments():
    parameters = CallParameters.of(functools.partial(predict, 1))

    assert parameters.data_arguments((5,), {}) == {"y": 5}


CALLS = [
    ("one mapping argument", ({"a": 1},), {}, [{"a": 1}]),
    ("mapping by keyword", (), {"x": {"a": 1}}, [{"a": 1}]),
    ("several arguments", (1,), {"y": "b"}, [{"x": 1, "y": "b"}]),
    ("one scalar argument", (3,), {}, [{"x": 3}]),
    ("no arguments", (), {}, [{}]),
    (
        "DataFrame argument",
        (pd.DataFrame({"a": [1, 2]}),),
        {},
        [{"a": 1}, {"a": 2}],
    ),
]


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [case[1:] for case in CALLS],
    ids=[case[0] for case in CALLS],
)
def test_rows_from_call_follows_the_argument_rules(args, kwargs, expected):
    def target(x=None, y=None):
        return x

    parameters = CallParameters.of(target)

    assert rows_from_call(args, kwargs, parameters=parameters) == expected


def test_rows_from_call_takes_feature_names_for_arrays():
    rows = rows_from_call(
        (np.array([[1, 2]]),),
        {},
        parameters=CallParameters.of(lambda x: x),
        feature_names=["u", "v"],
    )

    assert rows == [{"u": 1, "v": 2}]


def test_rows_from_call_features_hook_sees_the_call():
    def features(x, *, scale):
        return [{"x": x, "scale": scale}, {"x": -x, "scale": scale}]

    rows = rows_from_call((2,), {"scale": 3}, features=features)

    assert rows == [{"x": 2, "scale": 3}, {"x": -2, "scale": 3}]


@pytest.mark.parametrize("produced", [5, "row", [{"a": 1}, 2], None])
def test_rows_from_call_rejects_hook_results_that_are_not_rows(produced):
    with pytest.raises(InvalidRecord, match="features= hook returned"):
        rows_from_call((), {}, features=lambda: produced)


# --------------------------------------------------------------------------
# Outputs of a call
# --------------------------------------------------------------------------

ONE = [{"a": 1}]
TWO = [{"a": 1}, {"a": 2}]
PROBA = np.array([[0.2, 0.8], [0.7, 0.3]])

RESULTS = [
    ("int", 1, ONE, {}, [{"value": 1}]),
    ("numpy scalar", np.float64(2.5), ONE, {}, [{"value": np.float64(2.5)}]),
    ("string", "cat", ONE, {}, [{"value": "cat"}]),
    ("one-item list", [4], ONE, {}, [{"value": 4}]),
    ("one-item array", np.array([4]), ONE, {}, [{"value": 4}]),
    ("list for one row", [1, 2, 3], ONE, {}, [{"value": [1, 2, 3]}]),
    ("mapping with value", {"value": 1}, ONE, {}, [{"value": 1}]),
    ("mapping with label", {"label": "a"}, ONE, {}, [{"value": "a"}]),
    (
        "prediction and scores",
        {"prediction": "b", "scores": {"a": 0.4, "b": 0.6}},
        ONE,
        {},
        [{"value": "b", "probabilities": {"a": 0.4, "b": 0.6}}],
    ),
    (
        "shap values list",
        {"value": 1, "shap_values": [0.3]},
        ONE,
        {},
        [{"value": 1, "shap_values": {"a": 0.3}}],
    ),
    (
        "pair",
        ("a", {"a": 0.9, "b": 0.1}),
        ONE,
        {},
        [{"value": "a", "probabilities": {"a": 0.9, "b": 0.1}}],
    ),
    (
        "pair with array and class_names",
        ("b", np.array([0.1, 0.9])),
        ONE,
        {"class_names": ["a", "b"]},
        [{"value": "b", "probabilities": {"a": 0.1, "b": 0.9}}],
    ),
    (
        "probability row with class_names",
        np.array([0.1, 0.9]),
        ONE,
        {"class_names": ["a", "b"]},
        [{"value": "b", "probabilities": {"a": 0.1, "b": 0.9}}],
    ),
    ("list per row", [1, 0], TWO, {}, [{"value": 1}, {"value": 0}]),
    ("tuple per row", ("x", "y"), TWO, {}, [{"value": "x"}, {"value": "y"}]),
    ("array per row", np.array([1, 0]), TWO, {}, [{"value": 1}, {"value": 0}]),
    (
        "Series per row",
        pd.Series([0.5, 1.5]),
        TWO,
        {},
        [{"value": 0.5}, {"value": 1.5}],
    ),
    (
        "predictions envelope",
        {"predictions": np.array([3, 4])},
        TWO,
        {},
        [{"value": 3}, {"value": 4}],
    ),
    (
        "columnar mapping",
        {"label": ["x", "y"], "probabilities": [{"x": 1.0}, {"y": 1.0}]},
        TWO,
        {},
        [
            {"value": "x", "probabilities": {"x": 1.0}},
            {"value": "y", "probabilities": {"y": 1.0}},
        ],
    ),
    (
        "DataFrame of predictions",
        pd.DataFrame({"prediction": [1, 0]}),
        TWO,
        {},
        [{"value": 1}, {"value": 0}],
    ),
    (
        "2-D probabilities with class_names",
        PROBA,
        TWO,
        {"class_names": ["no", "yes"]},
        [
            {"value": "yes", "probabilities": {"no": 0.2, "yes": 0.8}},
            {"value": "no", "probabilities": {"no": 0.7, "yes": 0.3}},
        ],
    ),
    (
        "2-D probabilities with model classes",
        np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]),
        TWO,
        {"model": Classifier()},
        [
            {"value": 2, "probabilities": {"0": 0.1, "1": 0.2, "2": 0.7}},
            {"value": 0, "probabilities": {"0": 0.5, "1": 0.25, "2": 0.25}},
        ],
    ),
    (
        "2-D array without labels is a value per row",
        PROBA,
        TWO,
        {},
        [{"value": [0.2, 0.8]}, {"value": [0.7, 0.3]}],
    ),
    (
        "batch pair of labels and probabilities",
        (np.array(["yes", "no"]), PROBA),
        TWO,
        {"class_names": ["no", "yes"]},
        [
            {"value": "yes", "probabilities": {"no": 0.2, "yes": 0.8}},
            {"value": "no", "probabilities": {"no": 0.7, "yes": 0.3}},
        ],
    ),
    ("no rows", [1], [], {}, []),
]


@pytest.mark.parametrize(
    ("result", "rows", "options", "expected"),
    [case[1:] for case in RESULTS],
    ids=[case[0] for case in RESULTS],
)
def test_outputs_for_rows_maps_each_result(result, rows, options, expected):
    assert outputs_for_rows(result, rows, **options) == expected


def test_outputs_for_rows_prefers_class_names_to_model_classes():
    outputs = outputs_for_rows(
        np.array([0.1, 0.2, 0.7]), ONE, class_names=["a", "b", "c"], model=Classifier()
    )

    assert outputs == [{"value": "c", "probabilities": {"a": 0.1, "b": 0.2, "c": 0.7}}]


@pytest.mark.parametrize(
    "result",
    [
        [1, 2, 3],
        np.array([1]),
        {"predictions": [1]},
        {"label": "a"},
        5,
        np.zeros((3, 2)),
    ],
)
def test_outputs_for_rows_gives_none_when_counts_disagree(result):
    assert outputs_for_rows(result, TWO) is None


def test_outputs_for_rows_hook_gives_prediction_data():
    def outputs(result, rows):
        return [{"value": result * row["a"]} for row in rows]

    assert outputs_for_rows(10, TWO, outputs=outputs) == [
        {"value": 10},
        {"value": 20},
    ]


def test_outputs_for_rows_hook_may_return_one_mapping_for_one_row():
    assert outputs_for_rows(1, ONE, outputs=lambda r, rows: {"value": r}) == [
        {"value": 1}
    ]


def test_outputs_for_rows_hook_of_wrong_length_gives_none():
    assert outputs_for_rows(1, TWO, outputs=lambda r, rows: [{"value": r}]) is None


@pytest.mark.parametrize(
    ("produced", "message"),
    [
        (5, "outputs= hook returned a number"),
        ([{"value": 1}, 2], "outputs= hook item 1 is a number"),
    ],
)
def test_outputs_for_rows_rejects_hook_results_of_another_kind(produced, message):
    with pytest.raises(InvalidRecord, match=message):
        outputs_for_rows(1, TWO, outputs=lambda r, rows: produced)


# --------------------------------------------------------------------------
# Without numpy and pandas
# --------------------------------------------------------------------------


def test_extract_works_without_numpy_or_pandas():
    script = (
        "import sys\n"
        "sys.modules['numpy'] = None\n"
        "sys.modules['pandas'] = None\n"
        "from mlf_middleware.extract import rows_from_value, outputs_for_rows\n"
        "rows = rows_from_value([[1, 2]])\n"
        "print(rows, outputs_for_rows((0, [0.5, 0.5]), rows))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "[{'f0': 1, 'f1': 2}] [{'value': 0, 'probabilities': {'0': 0.5, '1': 0.5}}]"
    )


def test_call_parameters_never_count_framework_objects():
    requests = pytest.importorskip("starlette.requests")
    request = requests.Request({"type": "http", "method": "POST", "headers": []})
    parameters = CallParameters.of(lambda item, request: item)

    arguments = parameters.data_arguments((), {"item": {"a": 1}, "request": request})

    assert arguments == {"item": {"a": 1}}
