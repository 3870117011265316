"""The data_id schemes: the values SPEC section 3 and issue 2 pin down."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from mlf_middleware import MLFError, generate_hash_from_data
from mlf_middleware.exceptions import ConfigError, InvalidRecord, UnsupportedValue
from mlf_middleware.hashing import (
    NAMESPACE,
    canonical_json,
    data_id_of_normalized,
    dumps,
    format_timestamp,
    normalize,
)

NOON_UTC = datetime(2024, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"feature1": 3.33, "feature2": "class1"}, "e4ff3f12e57e53cab6f6281c58393b6b"),
        ({"x": 1}, "7ed41a8229ef5bd787fd6f8d390e9df9"),
        ({"x": 1.0}, "7ed41a8229ef5bd787fd6f8d390e9df9"),
        ({"x": np.float32(1.0)}, "7ed41a8229ef5bd787fd6f8d390e9df9"),
        ({"b": 2, "a": 1}, "55bebe480aaa502abcba2eca200d89f0"),
        ({"x": float("nan")}, "924968089a685bc4b88ff8fc119f22b2"),
        ({"v": [1, 2.5, 1e21, 1e-7, -0.0]}, "2540fcb959055a03a94a039870a6c8d3"),
    ],
)
def test_canonical_ids_match_the_spec(features, expected):
    assert generate_hash_from_data(features) == expected
    assert generate_hash_from_data(features, scheme="canonical") == expected


@pytest.mark.parametrize(
    "timestamp",
    [
        NOON_UTC,
        datetime(2024, 1, 1, 12),
        datetime(2024, 1, 1, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
    ids=["utc", "naive", "plus-0530"],
)
def test_canonical_id_with_timestamp_is_by_instant(timestamp):
    data_id = generate_hash_from_data({"x": 1}, timestamp)

    assert data_id == "1c33697db4895e02af51281819c6f3f9"


@pytest.mark.parametrize(
    ("features", "timestamp", "expected"),
    [
        (
            {"feature1": 3.33, "feature2": "class1"},
            None,
            "f5b8a11b64a15818bd8f31d2f3fe89bb",
        ),
        ({"x": 1}, None, "9cd4b31d4d63568db6981910dac299a4"),
        ({"x": 1.0}, None, "65868f18b01950599be6b7956ac8b691"),
        ({"x": 1}, NOON_UTC, "f941988138bc5b31a70b1c81526fd3da"),
    ],
)
def test_mlfoundry_ids_match_the_spec(features, timestamp, expected):
    assert generate_hash_from_data(features, timestamp, scheme="mlfoundry") == expected


def test_mlfoundry_scheme_is_the_mlfoundry_formula():
    features = {"b": [1, 2.5, None], "a": "é", "c": {"z": True, "y": 1e21}}
    text = json.dumps(features, sort_keys=True) + NOON_UTC.isoformat()

    data_id = generate_hash_from_data(features, NOON_UTC, scheme="mlfoundry")

    assert data_id == uuid.uuid5(uuid.NAMESPACE_X500, text).hex


def test_namespace_is_derived_from_the_url_namespace():
    expected = uuid.uuid5(uuid.NAMESPACE_URL, "mlf-middleware:data_id:v1")

    assert expected == NAMESPACE
    assert str(NAMESPACE) == "37aad5ae-5b93-56af-89ed-664284c3ee8b"


def test_id_is_uuid5_of_canonical_text():
    features = {"b": [1, 2.5], "a": "x"}

    data_id = generate_hash_from_data(features)

    assert canonical_json(normalize(features)) == '{"a":"x","b":[1,2.5]}'
    assert data_id == uuid.uuid5(NAMESPACE, '{"a":"x","b":[1,2.5]}').hex


def test_data_id_of_normalized_matches_generate():
    features = {"a": np.int64(3), "b": [np.float32(0.5), None]}

    tree = normalize(features, path="features")

    assert data_id_of_normalized(tree) == generate_hash_from_data(features)
    assert data_id_of_normalized(tree, NOON_UTC) == generate_hash_from_data(
        features, NOON_UTC
    )


def test_unknown_scheme_raises_config_error_naming_scheme():
    with pytest.raises(ConfigError, match="scheme") as caught:
        generate_hash_from_data({"x": 1}, scheme="md5")

    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, MLFError)
    assert "'md5'" in str(caught.value)


def test_normalize_returns_plain_flat_dict_itself():
    features = {"a": 1, "b": 2.5, "c": "x", "d": True, "e": None}

    assert normalize(features) is features


def test_normalize_converts_non_finite_floats_to_names():
    tree = normalize({"a": float("nan"), "b": float("inf"), "c": -float("inf")})

    assert tree == {"a": "NaN", "b": "Infinity", "c": "-Infinity"}


def test_normalize_names_type_and_place_of_unsupported_value():
    with pytest.raises(UnsupportedValue) as caught:
        normalize({"a": [1, 2, object()]}, path="features")

    assert isinstance(caught.value, TypeError)
    assert str(caught.value) == 'unsupported type object at features["a"][2]'


def test_normalize_names_keys_that_collide():
    with pytest.raises(InvalidRecord) as caught:
        normalize({1: "a", "1": "b"}, path="features")

    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == (
        "keys 1 and '1' both become the key \"1\" at features"
    )


def test_probabilities_keyed_by_numpy_labels_become_strings():
    tree = normalize({np.int64(0): 0.25, np.int64(1): 0.75})

    assert tree == {"0": 0.25, "1": 0.75}


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (NOON_UTC, "2024-01-01T12:00:00.000000Z"),
        (datetime(2024, 1, 1, 12, 0, 0, 5), "2024-01-01T12:00:00.000005Z"),
        (
            datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
            "2023-12-31T23:30:00.000000Z",
        ),
    ],
)
def test_format_timestamp_is_rfc3339_utc_with_micros(dt, text):
    assert format_timestamp(dt) == text


def test_dumps_writes_strict_compact_json():
    tree = normalize({"a": float("nan"), "b": [1, 2.5], "c": "é", "d": 2**70})

    assert dumps(tree) == (
        '{"a":"NaN","b":[1,2.5],"c":"é","d":1180591620717411303424}'.encode()
    )


def _mlfoundry_of_text(text: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_X500, text).hex


@pytest.mark.parametrize(
    ("features", "text"),
    [
        ({"x": np.float32(1.0)}, '{"x": 1.0}'),
        ({"x": np.int64(3), "y": np.bool_(True)}, '{"x": 3, "y": true}'),
        ({"x": float("nan")}, '{"x": NaN}'),
        ({"x": np.float64("inf")}, '{"x": Infinity}'),
        ({"x": np.array([np.nan, 1.5])}, '{"x": [NaN, 1.5]}'),
        ({"when": NOON_UTC}, '{"when": "2024-01-01T12:00:00.000000Z"}'),
        ({"tags": {"b", "a"}}, '{"tags": ["a", "b"]}'),
        ({np.int64(1): 0.75, np.int64(0): 0.25}, '{"0": 0.25, "1": 0.75}'),
        ({1: "a", "b": 2}, '{"1": "a", "b": 2}'),
    ],
)
def test_mlfoundry_scheme_normalises_what_json_cannot_encode(features, text):
    data_id = generate_hash_from_data(features, scheme="mlfoundry")

    assert data_id == _mlfoundry_of_text(text)


def test_mlfoundry_scheme_keeps_timestamp_isoformat_as_given():
    paris = datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))

    data_id = generate_hash_from_data({"x": 1}, paris, scheme="mlfoundry")

    assert data_id == _mlfoundry_of_text('{"x": 1}2024-01-01T13:00:00+01:00')


@pytest.mark.parametrize("scheme", ["canonical", "mlfoundry"])
def test_timestamp_must_be_a_datetime(scheme):
    with pytest.raises(UnsupportedValue, match="timestamp"):
        generate_hash_from_data({"x": 1}, "2024-01-01", scheme=scheme)
