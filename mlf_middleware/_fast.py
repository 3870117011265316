"""RFC 8785 text through orjson, for the trees where orjson writes it exactly.

orjson sorts keys and writes strings as RFC 8785 does; only some floats
differ ("1.0" for 1, exponents from 1e16 and below 1e-5, null for NaN),
and key order differs around characters beyond U+FFFF. Where that may
happen we fix the floats and write again, or answer None so the caller
takes the complete path (normalize, then _canonical.write).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ._canonical import number_text, write

__all__ = ["canonical_bytes", "fast_text"]

_dumps = orjson.dumps
_Fragment = orjson.Fragment

# orjson must refuse (raise TypeError) what it would write otherwise than the
# normaliser: numpy values, subclasses, dates, dataclasses.
STRICT = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_SORTED = STRICT | orjson.OPT_SORT_KEYS

_LEAVES = frozenset({str, int, bool, type(None)})
_EXACT_INT = 2.0**53  # integral floats below this print as exact integers
_INTEGRAL_FLOAT = re.compile(rb"\.0(?:[,\]}]|$)")
_FOUR_BYTE_CHAR = re.compile(rb"[\xf0-\xf4]")

# what a flat mapping needs before orjson may write it
_AS_IS, _FIX_FLOATS, _UNSURE = range(3)


def canonical_bytes(tree: Any) -> bytes:
    """Return the RFC 8785 UTF-8 text of an already-normalised tree."""
    text = fast_text(tree, raw=False)
    if text is not None:
        return text

    return write(tree).encode("utf-8")


def fast_text(value: Any, *, raw: bool) -> bytes | None:
    """Return RFC 8785 bytes written by orjson, or None for the slow path.

    With ``raw`` the value comes straight from the caller and may hold
    anything; None then means "normalise it first".
    """
    state = _flat_state(value) if type(value) is dict else _UNSURE
    try:
        if state is _AS_IS:
            text = _dumps(value, option=_SORTED)
        elif state is _FIX_FLOATS:
            text = _dumps(_exact_flat(value), option=_SORTED)
        else:
            text = _scanned_text(value, raw=raw)
    except (TypeError, _NotPlain):  # a type to convert, a surrogate, a huge int
        return None
    if text is None:
        return None
    # orjson sorts keys by code point, RFC 8785 by UTF-16 code unit: they
    # differ only around characters beyond U+FFFF, which the slow path sorts.
    if text.isascii() or _FOUR_BYTE_CHAR.search(text) is None:
        return text

    return None


def _flat_state(mapping: dict) -> int:
    """Tell whether orjson writes a dict of scalars exactly as RFC 8785."""
    state = _AS_IS
    for value in mapping.values():
        kind = type(value)
        if kind is float:
            # orjson and ECMAScript agree on non-integral floats here
            if value % 1.0 == 0.0 or not (
                1e-4 <= value < 1e15 or -1e15 < value <= -1e-4
            ):
                if value - value != 0.0:  # NaN or infinity: normalise
                    return _UNSURE
                state = _FIX_FLOATS
        elif (
            kind is not str and kind is not int and kind is not bool
        ) and value is not None:
            return _UNSURE

    return state


def _scanned_text(value: Any, *, raw: bool) -> bytes | None:
    """Write any tree with orjson, then look for floats it wrote otherwise."""
    text = _dumps(value, option=_SORTED)
    if raw and b"null" in text:  # perhaps a NaN
        return None
    if (
        b"e+" in text
        or b"e-" in text
        or (b".0" in text and _INTEGRAL_FLOAT.search(text))
    ):
        text = _dumps(_exact_floats(value), option=_SORTED)

    return text


def _exact_flat(mapping: dict) -> dict:
    """Copy a flat dict of scalars with its floats fixed (see _exact_float)."""
    return {
        key: _exact_float(value) if type(value) is float else value
        for key, value in mapping.items()
    }


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
    if kind is float and value - value == 0.0:
        return _exact_float(value)

    raise _NotPlain


def _exact_float(number: float) -> Any:
    """Return a finite float as something orjson writes in RFC 8785 form."""
    if number.is_integer():
        if -_EXACT_INT < number < _EXACT_INT:
            return int(number)  # "1" rather than "1.0"; -0.0 becomes 0
    elif not -1e-4 < number < 1e-4:
        return number  # orjson's shortest digits, placed as ECMAScript does
    return _Fragment(number_text(number))
