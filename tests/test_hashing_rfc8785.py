"""canonical_json is RFC 8785: checked against the rfc8785 package."""

from __future__ import annotations

import json
import math
import struct
import uuid

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlf_middleware._canonical import write
from mlf_middleware.hashing import (
    NAMESPACE,
    canonical_json,
    data_id_of_normalized,
    generate_hash_from_data,
    normalize,
)

SAFE = 2**53 - 1
PROPERTY = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# JSON-native values that rfc8785 accepts: integers below 2**53 in
# magnitude, finite floats, text without lone surrogates.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@PROPERTY
@given(json_objects)
@example({"\ue000": 1, "\U0001f600": 2})
@example({"v": [1, 2.5, 1e21, 1e-7, -0.0, 5e-324, 1e16, 1e-6]})
def test_canonical_text_and_id_follow_rfc8785(value):
    expected = rfc8785.dumps(value).decode()

    assert canonical_json(normalize(value)) == expected
    assert generate_hash_from_data(value) == uuid.uuid5(NAMESPACE, expected).hex


@PROPERTY
@given(json_values)
def test_python_writer_equals_rfc8785(value):
    assert write(value) == rfc8785.dumps(value).decode()


# Beyond rfc8785: big integers, NaN, lone surrogates. The fast path (orjson)
# and the complete Python writer must agree on all of it.
wide_scalars = (
    json_scalars
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec=None, categories=None), max_size=12)
)
wide_values = st.recursive(
    wide_scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=5),
    max_leaves=12,
)


@PROPERTY
@given(st.dictionaries(st.text(max_size=8), wide_values, max_size=6))
def test_fast_path_equals_python_writer(value):
    tree = normalize(value)
    text = write(tree)

    assert canonical_json(tree) == text
    assert generate_hash_from_data(value) == uuid.uuid5(NAMESPACE, text).hex
    assert data_id_of_normalized(tree) == uuid.uuid5(NAMESPACE, text).hex


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_every_double_bit_pattern_is_written_as_ecmascript(bits):
    number = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if not math.isfinite(number):
        return
    expected = rfc8785.dumps({"x": number}).decode()

    assert canonical_json({"x": number}) == expected  # the flat-dict path
    assert canonical_json([{"x": number}]) == f"[{expected}]"  # the nested path
    assert generate_hash_from_data({"x": number}) == uuid.uuid5(NAMESPACE, expected).hex


def _neighbours(number: float) -> list[float]:
    return [math.nextafter(number, -math.inf), number, math.nextafter(number, math.inf)]


@pytest.mark.parametrize(
    "number",
    [
        n * sign
        for edge in (1e-7, 1e-6, 1e-5, 1e-4, 1e15, 2.0**52, 2.0**53, 1e16, 1e21)
        for n in _neighbours(edge)
        for sign in (1, -1)
    ],
)
def test_floats_around_notation_edges(number):
    expected = rfc8785.dumps({"x": number}).decode()

    assert canonical_json({"x": number}) == expected
    assert canonical_json([number]) == f"[{expected[5:-1]}]"
    assert generate_hash_from_data({"x": number}) == uuid.uuid5(NAMESPACE, expected).hex


def test_keys_sort_by_utf16_code_units_not_code_points():
    # U+1F600 is the pair D83D DE00, which sorts before U+E000 in UTF-16
    value = {"\ue000": 1, "\U0001f600": 2, "\uffff": 3, "z": 4}

    text = canonical_json(normalize(value))

    assert text == '{"z":4,"\U0001f600":2,"\ue000":1,"\uffff":3}'
    assert text == rfc8785.dumps(value).decode()


def test_astral_keys_sort_the_same_nested_in_lists():
    value = {"a": [{"\ue000": 1, "\U0001f600": 2}]}

    assert canonical_json(normalize(value)) == rfc8785.dumps(value).decode()


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e16, "10000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (1.5e-5, "0.000015"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-0.0, "0"),
        (0.0, "0"),
        (1.0, "1"),
        (-1.0, "-1"),
        (0.1, "0.1"),
        (123456789012345680000.0, "123456789012345680000"),
        (2.0**53, "9007199254740992"),
        (2.0**64, "18446744073709552000"),
        (2**53, "9007199254740992"),
        (2**53 + 1, "9007199254740993"),
        (2**64, "18446744073709551616"),
        (-(2**64), "-18446744073709551616"),
        (10**30, "1000000000000000000000000000000"),
    ],
)
def test_numbers_are_written_as_ecmascript_or_exact_digits(number, text):
    assert canonical_json([number]) == f"[{text}]"
    assert generate_hash_from_data({"n": number}) == (
        uuid.uuid5(NAMESPACE, f'{{"n":{text}}}').hex
    )


def test_integers_beyond_2_53_differ_from_their_double():
    assert generate_hash_from_data({"n": 2**53 + 1}) != generate_hash_from_data(
        {"n": float(2**53 + 1)}
    )


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ('"\\u0000\\u001f\\u007f"', '"\\u0000\\u001f\x7f"'),
        ('"\\b\\f\\n\\r\\t\\"\\\\/"', '"\\b\\f\\n\\r\\t\\"\\\\/"'),
        ('"\\u2028\\u00e9\\ud83d\\ude00"', '"\u2028\u00e9\U0001f600"'),
        ('"\\ud800"', '"\ufffd"'),
    ],
)
def test_strings_are_escaped_as_rfc8785(text, written):
    value = json.loads(text)

    assert canonical_json(normalize(value)) == written
