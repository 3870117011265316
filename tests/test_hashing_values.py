"""normalize(): every kind of value users send becomes one JSON-native tree."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections import OrderedDict, namedtuple
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pydantic
import pytest

from mlf_middleware.exceptions import InvalidRecord, UnsupportedValue
from mlf_middleware.hashing import (
    MAX_DEPTH,
    canonical_json,
    dumps,
    generate_hash_from_data,
    normalize,
)

NOON = datetime(2024, 1, 1, 12, tzinfo=UTC)
NOON_TEXT = "2024-01-01T12:00:00.000000Z"


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


class Size(enum.IntEnum):
    LARGE = 3


class Mode(enum.StrEnum):
    FAST = "fast"


@dataclasses.dataclass
class Point:
    x: float
    y: np.int64
    when: datetime


class Row(pydantic.BaseModel):
    age: int
    income: float
    when: datetime
    tags: list[str] = []


class Nested(pydantic.BaseModel):
    row: Row
    weight: Decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.bool_(True), True),
        (np.bool_(False), False),
        (np.int8(-8), -8),
        (np.int16(-16), -16),
        (np.int32(-32), -32),
        (np.int64(-(2**63)), -(2**63)),
        (np.uint8(8), 8),
        (np.uint16(16), 16),
        (np.uint32(32), 32),
        (np.uint64(2**64 - 1), 2**64 - 1),
        (np.float16(0.5), 0.5),
        (np.float16(0.1), 0.0999755859375),
        (np.float32(0.1), 0.10000000149011612),
        (np.float64(0.1), 0.1),
        (np.longdouble(0.5), 0.5),
        (np.float32("nan"), "NaN"),
        (np.float64("-inf"), "-Infinity"),
        (np.str_("text"), "text"),
        (np.bytes_(b"\x00\xff"), "AP8="),
        (np.datetime64("2024-01-01T12:00:00.123456789"), "2024-01-01T12:00:00.123456Z"),
        (np.datetime64("2024-01-01"), "2024-01-01T00:00:00.000000Z"),
        (np.datetime64("NaT"), None),
    ],
    ids=repr,
)
def test_numpy_scalars_become_python_values(value, expected):
    result = normalize(value)

    assert result == expected
    assert type(result) is type(expected)


def test_numpy_float32_is_not_the_decimal_it_approximates():
    assert generate_hash_from_data({"x": np.float32(0.1)}) != generate_hash_from_data(
        {"x": 0.1}
    )


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([1, 2, 3], dtype=np.int8), [1, 2, 3]),
        (np.array([[1.5, np.nan], [np.inf, 0]]), [[1.5, "NaN"], ["Infinity", 0.0]]),
        (np.array([True, False]), [True, False]),
        (np.array(7), 7),
        (np.array(2.5, dtype=np.float32), 2.5),
        (np.array([], dtype=np.float64), []),
        (np.array(["a", "b"]), ["a", "b"]),
        (np.array([b"ab"]), ["YWI="]),
        (np.array([{"k": np.int64(1)}, None], dtype=object), [{"k": 1}, None]),
        (
            np.array(["2024-01-01T12:00", "NaT"], dtype="datetime64[ns]"),
            [NOON_TEXT, None],
        ),
        (np.zeros((2, 0, 3)), [[], []]),
    ],
)
def test_numpy_arrays_become_lists(array, expected):
    assert normalize(array) == expected


def test_numpy_array_and_list_share_an_id():
    assert generate_hash_from_data({"v": np.array([1.0, 2.0])}) == (
        generate_hash_from_data({"v": [1, 2]})
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (pd.Timestamp("2024-01-01 12:00"), NOON_TEXT),
        (pd.Timestamp("2024-01-01 13:00", tz="Europe/Paris"), NOON_TEXT),
        (pd.Timestamp("2024-01-01 12:00:00.000001999"), "2024-01-01T12:00:00.000001Z"),
        (pd.NaT, None),
        (pd.NA, None),
        (pd.Series([1, 2, 3]), [1, 2, 3]),
        (pd.Series([1.5, None]), [1.5, "NaN"]),
        (pd.Series([1, None], dtype="Int64"), [1, None]),
        (pd.Series(pd.to_datetime(["2024-01-01 12:00", None])), [NOON_TEXT, None]),
        (pd.Series(["a", "b"], dtype="category"), ["a", "b"]),
        (pd.Index([3, 4]), [3, 4]),
    ],
    ids=repr,
)
def test_pandas_values(value, expected):
    assert normalize(value) == expected


def test_pandas_dataframe_is_refused_with_a_hint():
    with pytest.raises(UnsupportedValue, match=r"DataFrame .* at features\[\"df\"\]"):
        normalize({"df": pd.DataFrame({"a": [1]})}, path="features")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.10"), 1.1),
        (Decimal("3"), 3.0),
        (Decimal("NaN"), "NaN"),
        (Decimal("sNaN"), "NaN"),
        (Decimal("-Infinity"), "-Infinity"),
        (NOON, NOON_TEXT),
        (datetime(2024, 1, 1, 12), NOON_TEXT),
        (datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1))), NOON_TEXT),
        (date(2024, 2, 29), "2024-02-29"),
        (b"\x00\x01\xfe\xff", "AAH+/w=="),
        (bytearray(b"hi"), "aGk="),
        (memoryview(b"hi"), "aGk="),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Colour.RED, "red"),
        (Colour.BLUE, 2),
        (Size.LARGE, 3),
        (Mode.FAST, "fast"),
        ((1, "a", None), [1, "a", None]),
        (namedtuple("Pair", "a b")(1, 2), [1, 2]),
        (OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
        ("a\ud800b", "a\ufffdb"),
        ("\ud83d\ude00", "\U0001f600"),
    ],
    ids=repr,
)
def test_standard_library_values(value, expected):
    result = normalize(value)

    assert result == expected
    assert type(result) is type(expected)


def test_dataclass_becomes_mapping_of_its_fields():
    point = Point(x=1.5, y=np.int64(2), when=NOON)

    assert normalize(point) == {"x": 1.5, "y": 2, "when": NOON_TEXT}


def test_pydantic_models_become_mappings():
    model = Nested(row=Row(age=40, income=1.5, when=NOON), weight=Decimal("0.25"))

    tree = normalize(model)

    assert tree == {
        "row": {"age": 40, "income": 1.5, "when": NOON_TEXT, "tags": []},
        "weight": 0.25,
    }


def test_pydantic_model_and_its_dict_share_an_id():
    model = Row(age=40, income=1.5, when=NOON, tags=["a"])
    as_dict = {"age": 40, "income": 1.5, "when": NOON_TEXT, "tags": ["a"]}

    assert generate_hash_from_data(model) == generate_hash_from_data(as_dict)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a", "10", "9"}), ["10", "9", "a", "b"]),
        # by canonical text: '"b"' < '2' < 'null' < 'true'
        ({True, None, 2, "b"}, ["b", 2, None, True]),
        ({(2, 1), (1, 2)}, [[1, 2], [2, 1]]),
    ],
)
def test_sets_become_lists_sorted_by_canonical_text(value, expected):
    assert normalize(value) == expected


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (1, "1"),
        (1.0, "1"),
        (2.5, "2.5"),
        (1e21, "1e+21"),
        (float("nan"), "NaN"),
        (np.int64(0), "0"),
        (np.float32(0.5), "0.5"),
        (np.bool_(True), "true"),
        (Decimal("1.5"), "1.5"),
        (date(2024, 1, 2), "2024-01-02"),
        (NOON, NOON_TEXT),
        (uuid.UUID(int=2), "00000000-0000-0000-0000-000000000002"),
        (Colour.RED, "red"),
        ((1, "a"), '[1,"a"]'),
        ("\udc80", "\ufffd"),
    ],
    ids=repr,
)
def test_mapping_keys_become_strings(key, text):
    assert normalize({key: 1}) == {text: 1}


def test_key_of_unknown_type_uses_str():
    class Label:
        def __str__(self) -> str:
            return "label"

    assert normalize({Label(): 1}) == {"label": 1}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({1: "a", "1": "b"}, "keys 1 and '1' both become the key \"1\""),
        ({True: 1, "true": 2}, "keys True and 'true' both become the key \"true\""),
        ({np.int64(1): 1, "1": 2}, "both become the key \"1\""),
        ({"\ud800": 1, chr(0xFFFD): 2}, "both become the key"),
    ],
)
def test_colliding_keys_raise_naming_the_key(mapping, message):
    with pytest.raises(InvalidRecord, match=message.replace("\\", "")) as caught:
        normalize({"p": mapping}, path="features")

    assert str(caught.value).endswith('at features["p"]')


@pytest.mark.parametrize(
    ("value", "place", "type_name"),
    [
        ({"a": [1, 2, 1j]}, 'features["a"][2]', "complex"),
        ({"a": {"b": timedelta(1)}}, 'features["a"]["b"]', "datetime.timedelta"),
        ({"t": time(12)}, 'features["t"]', "datetime.time"),
        ({"c": np.complex64(1)}, 'features["c"]', "numpy.complex64"),
        ({"d": np.timedelta64(1, "s")}, 'features["d"]', "numpy.timedelta64"),
        ({"g": (x for x in ())}, 'features["g"]', "generator"),
        ({"a": np.array([1 + 2j])}, 'features["a"][0]', "numpy.complex128"),
        ({"s": {object()}}, 'features["s"][*]', "object"),
        ({7: [object()]}, "features[7][0]", "object"),
    ],
)
def test_unsupported_value_names_type_and_place(value, place, type_name):
    with pytest.raises(UnsupportedValue) as caught:
        normalize(value, path="features")

    assert isinstance(caught.value, TypeError)
    assert str(caught.value).startswith(f"unsupported type {type_name}")
    assert str(caught.value).endswith(f" at {place}")


def test_generate_hash_names_the_unsupported_place():
    with pytest.raises(TypeError, match=r'features\["x"\]'):
        generate_hash_from_data({"x": object()})


def test_self_containing_value_is_refused():
    loop: list = []
    loop.append(loop)

    with pytest.raises(InvalidRecord, match="nesting deeper than"):
        normalize({"a": loop})


def test_nesting_up_to_the_limit_is_kept():
    deep: list = []
    for _ in range(MAX_DEPTH - 2):
        deep = [deep]

    assert canonical_json(normalize({"a": deep})).count("[") == MAX_DEPTH - 1


def test_nested_plain_dicts_are_not_copied():
    features = {"a": {"b": [1, 2]}, "c": 1.5}

    tree = normalize(features)

    assert tree is features
    assert tree["a"] is features["a"]


def test_conversion_copies_without_touching_the_input():
    features = {"a": 1, "b": np.int64(2), "c": {"d": float("nan")}}

    tree = normalize(features)

    assert tree == {"a": 1, "b": 2, "c": {"d": "NaN"}}
    assert type(features["b"]) is np.int64
    assert features["c"]["d"] != features["c"]["d"]


def test_wire_form_and_id_use_the_same_tree():
    features = {"when": NOON, "x": np.float32(1.0), "tags": ("a",), "n": None}

    tree = normalize(features)

    assert dumps(tree) == (
        b'{"when":"2024-01-01T12:00:00.000000Z","x":1.0,"tags":["a"],"n":null}'
    )
    assert canonical_json(tree) == (
        '{"n":null,"tags":["a"],"when":"2024-01-01T12:00:00.000000Z","x":1}'
    )


def test_float_nan_and_string_nan_share_an_id():
    assert generate_hash_from_data({"x": float("nan")}) == generate_hash_from_data(
        {"x": "NaN"}
    )
