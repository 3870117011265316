"""The one normaliser, the canonical JSON text and the data_id schemes.

``normalize`` turns what users send (numpy, pandas, Decimal, datetime, ...)
into a JSON-native tree; ``canonical_json`` writes that tree as RFC 8785
text; ``generate_hash_from_data`` hashes it into a data_id. The wire form of
records uses the same tree through ``dumps``. docs/data-id.md is the
language-independent description of the canonical scheme.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from typing import Any

import orjson

from ._canonical import clean_text, number_text, write
from ._normalize import MAX_DEPTH, format_timestamp, normalize_tree
from .exceptions import ConfigError, UnsupportedValue

__all__ = [
    "MAX_DEPTH",
    "NAMESPACE",
    "SCHEMES",
    "canonical_json",
    "data_id_of_normalized",
    "dumps",
    "format_timestamp",
    "generate_hash_from_data",
    "normalize",
]

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "mlf-middleware:data_id:v1")
SCHEMES = ("canonical", "mlfoundry")

_CANONICAL_NS = NAMESPACE.bytes
_MLFOUNDRY_NS = uuid.NAMESPACE_X500.bytes
_sha1 = hashlib.sha1
_orjson_dumps = orjson.dumps
_Fragment = orjson.Fragment
_LEAVES = frozenset({str, int, bool, type(None)})
_EXACT_INT = 2.0**53  # integral floats below this print as exact integers

# orjson must refuse (raise TypeError) whatever it would write differently
# from the normaliser: numpy, subclasses, dates, dataclasses. What it accepts
# then (dict, list, tuple, str, int, float, bool, None, UUID, Enum) it writes
# as RFC 8785 does, except some floats, which _IMPRECISE catches.
_STRICT = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_SORTED = _STRICT | orjson.OPT_SORT_KEYS

# Signs that orjson wrote a float otherwise than RFC 8785: an integral float
# ("1.0"), an exponent ("1e+16", "1e-6"). They may also match inside strings,
# which costs a second pass, never a wrong text.
_INTEGRAL_FLOAT = re.compile(rb"\.0(?:[,\]}]|$)")
_FOUR_BYTE_CHAR = re.compile(rb"[\xf0-\xf4]")

# The last hex digit pair of a UUID's clock_seq_hi: variant bits 10xx.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def normalize(value: Any, *, path: str = "value") -> Any:
    """Return the JSON-native tree of ``value`` (SPEC section 3, step 1).

    The tree holds dicts with str keys, lists, str, int, finite float, bool
    and None; float NaN and infinities become "NaN", "Infinity",
    "-Infinity". A value that is already such a tree may be returned as it
    is (not copied), so encode it before the caller can change it.
    Raise UnsupportedValue (a TypeError) naming the type and its place
    (``path`` names the root, as in ``features["a"][2]``), or InvalidRecord
    (a ValueError) naming the key when two keys become the same string.
    """
    if type(value) is dict and _is_plain_flat(value):
        return value

    return normalize_tree(value, path, keep_nonfinite=False)


def _is_plain_flat(mapping: dict) -> bool:
    """Tell whether a dict of str keys to scalars needs no conversion."""
    for key, value in mapping.items():
        if type(key) is not str or not (key.isascii() or clean_text(key) is key):
            return False
        kind = type(value)
        if kind is str:
            if not value.isascii() and clean_text(value) is not value:
                return False
        elif kind is float:
            if value - value != 0.0:  # NaN or an infinity
                return False
        elif kind is not int and kind is not bool and value is not None:
            return False

    return True


def canonical_json(tree: Any) -> str:
    """Return the RFC 8785 text of an already-normalised tree.

    Integers of magnitude 2**53 or more are written as their exact digits.
    """
    return _canonical_bytes(tree).decode("utf-8")


def _canonical_bytes(tree: Any) -> bytes:
    text = _fast_text(tree, raw=False)
    if text is not None:
        return text

    return write(tree).encode("utf-8")


def _fast_text(value: Any, *, raw: bool) -> bytes | None:
    """Return RFC 8785 bytes written by orjson, or None for the slow path.

    With ``raw`` the value comes straight from the caller, so a float NaN
    (which orjson writes as null) also sends it to normalize() first.
    """
    try:
        text = _orjson_dumps(value, option=_SORTED)
    except TypeError:  # a type to convert, a surrogate, an int beyond 64 bits
        return None
    if raw and b"null" in text:
        return None
    if (
        b"e+" in text
        or b"e-" in text
        or (b".0" in text and _INTEGRAL_FLOAT.search(text))
    ):
        try:
            text = _orjson_dumps(_exact_floats(value), option=_SORTED)
        except _NotPlain:
            return None
    # orjson sorts keys by code point, RFC 8785 by UTF-16 code unit: they
    # differ only around characters beyond U+FFFF, which the slow path sorts.
    if not text.isascii() and _FOUR_BYTE_CHAR.search(text):
        return None

    return text


class _NotPlain(Exception):
    """A value that only the normaliser can convert (an Enum, a UUID)."""


def _exact_floats(value: Any) -> Any:
    """Copy a plain tree with each float that orjson writes otherwise fixed."""
    kind = type(value)
    if kind is dict:
        return {
            key: item if type(item) in _LEAVES else _exact_floats(item)
            for key, item in value.items()
        }
    if kind is list or kind is tuple:
        return [
            item if type(item) in _LEAVES else _exact_floats(item) for item in value
        ]
    if kind is float:
        return _exact_float(value)

    raise _NotPlain


def _exact_float(number: float) -> Any:
    """Return ``number`` as orjson will write in RFC 8785 form."""
    if number.is_integer():
        if -_EXACT_INT < number < _EXACT_INT:
            return int(number)  # "1" rather than "1.0"; -0.0 becomes 0
    elif not -1e-4 < number < 1e-4:
        return number  # orjson's shortest digits, placed as ECMAScript does
    return _Fragment(number_text(number))


def data_id_of_normalized(tree: Any, timestamp: datetime | None = None) -> str:
    """Return the canonical data_id of an already-normalised tree."""
    text = _canonical_bytes(tree)
    if timestamp is not None:
        text += b"|" + format_timestamp(timestamp).encode("ascii")

    return _uuid5_hex(_CANONICAL_NS, text)


def generate_hash_from_data(
    features: Any,
    timestamp: datetime | None = None,
    *,
    scheme: str = "canonical",
) -> str:
    """Return the data_id of ``features``: 32 lowercase hex characters.

    ``scheme="canonical"`` (the default) is described in docs/data-id.md;
    ``scheme="mlfoundry"`` reproduces mlfoundry's ids. ``timestamp``, when
    given, is part of the id.
    """
    if scheme == "canonical":
        text = _fast_text(features, raw=True)
        if text is None:
            text = _canonical_bytes(normalize(features, path="features"))
        if timestamp is not None:
            text += b"|" + format_timestamp(timestamp).encode("ascii")
        return _uuid5_hex(_CANONICAL_NS, text)
    if scheme == "mlfoundry":
        return _mlfoundry_id(features, timestamp)

    raise ConfigError(
        f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}"
    )


def _mlfoundry_id(features: Any, timestamp: datetime | None) -> str:
    """Hash as mlfoundry does: json.dumps(sort_keys=True) + isoformat()."""
    if timestamp is not None and not isinstance(timestamp, datetime):
        raise UnsupportedValue(
            f"timestamp must be a datetime, not {type(timestamp).__name__}"
        )
    try:
        text = json.dumps(features, sort_keys=True, default=_json_default)
    except (TypeError, ValueError):  # keys json refuses, or mixed key types
        tree = normalize_tree(features, "features", keep_nonfinite=True)
        text = json.dumps(tree, sort_keys=True)
    if timestamp is not None:
        text += timestamp.isoformat()

    return _uuid5_hex(_MLFOUNDRY_NS, text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    """Convert what json cannot encode as step 1 does, keeping NaN a float."""
    return normalize_tree(value, "features", keep_nonfinite=True)


def _uuid5_hex(namespace: bytes, name: bytes) -> str:
    """Return uuid5(namespace, name).hex without building a UUID object."""
    digest = _sha1(namespace + name).hexdigest()

    return digest[:12] + "5" + digest[13:16] + _VARIANT[digest[16]] + digest[17:32]


def dumps(tree: Any) -> bytes:
    """Return strict RFC 8259 JSON bytes of an already-normalised tree."""
    try:
        return _orjson_dumps(tree, option=_STRICT)
    except TypeError:  # integers beyond 64 bits, or a tree not normalised
        pass
    try:
        text = json.dumps(
            tree, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise UnsupportedValue(
            f"dumps takes a normalised tree (call normalize() first): {exc}"
        ) from None
