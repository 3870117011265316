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
import uuid
from datetime import datetime
from typing import Any

from orjson import dumps as _orjson_dumps

from ._canonical import clean_text
from ._fast import STRICT, canonical_bytes, fast_text
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

# uuid5 = SHA-1 of the namespace's bytes, then the name: start from a copy
# of a hash that has already taken the namespace.
_CANONICAL_SEED = hashlib.sha1(NAMESPACE.bytes)
_MLFOUNDRY_SEED = hashlib.sha1(uuid.NAMESPACE_X500.bytes)
# the hex digit that holds the variant bits (10xx) of a UUID
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
    return canonical_bytes(tree).decode("utf-8")


def data_id_of_normalized(tree: Any, timestamp: datetime | None = None) -> str:
    """Return the canonical data_id of an already-normalised tree."""
    return _canonical_id(canonical_bytes(tree), timestamp)


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
        text = fast_text(features, raw=True)
        if text is None:
            text = canonical_bytes(normalize(features, path="features"))
        return _canonical_id(text, timestamp)
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

    return _uuid5_hex(_MLFOUNDRY_SEED, text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    """Convert what json cannot encode as step 1 does, keeping NaN a float."""
    return normalize_tree(value, "features", keep_nonfinite=True)


def _canonical_id(text: bytes, timestamp: datetime | None) -> str:
    """Return the data_id of canonical text (steps 3 and 4)."""
    if timestamp is not None:
        text += b"|" + format_timestamp(timestamp).encode("ascii")

    return _uuid5_hex(_CANONICAL_SEED, text)


def _uuid5_hex(seed: Any, name: bytes) -> str:
    """Return uuid5(namespace, name).hex, ``seed`` holding the namespace."""
    sha = seed.copy()
    sha.update(name)
    digest = sha.hexdigest()

    return f"{digest[:12]}5{digest[13:16]}{_VARIANT[digest[16]]}{digest[17:32]}"


def dumps(tree: Any) -> bytes:
    """Return strict RFC 8259 JSON bytes of an already-normalised tree.

    Keys keep their order. orjson writes it; the standard library only
    what orjson cannot (integers beyond 64 bits).
    """
    try:
        return _orjson_dumps(tree, option=STRICT)
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
