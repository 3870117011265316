"""RFC 8785 text of a JSON-native tree, written in Python (the complete path)."""

from __future__ import annotations

import re
from json.encoder import encode_basestring as _quote
from typing import Any

from .exceptions import UnsupportedValue

__all__ = [
    "clean_text",
    "int_text",
    "nonfinite_name",
    "number_text",
    "utf16_order",
    "write",
]

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Return ``text`` with lone surrogates as U+FFFD (``text`` itself if none).

    Two surrogates that form a valid UTF-16 pair are joined into the one
    character they spell, as a UTF-16 language would read them.
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text

    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def nonfinite_name(number: float) -> str:
    """Return "NaN", "Infinity" or "-Infinity" for a float that is not finite."""
    if number != number:
        return "NaN"

    return "Infinity" if number > 0 else "-Infinity"


def number_text(number: float) -> str:
    """Return a finite float as ECMAScript's Number::toString writes it."""
    if number == 0.0:
        return "0"  # -0 too
    text = float.__repr__(number)
    if "e" not in text:
        # repr is positional exactly where ECMAScript is (1e-4 <= |x| < 1e16)
        return text[:-2] if text.endswith(".0") else text

    mantissa, _, exponent = text.partition("e")
    sign = "-" if mantissa[0] == "-" else ""
    digits = mantissa.lstrip("-").replace(".", "")
    return sign + _place_point(digits, int(exponent) + 1)


def _place_point(digits: str, point: int) -> str:
    """Write shortest ``digits`` whose decimal point sits after ``point`` digits."""
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits

    exponent = point - 1
    head = digits[0] + ("." + digits[1:] if count > 1 else "")
    return f"{head}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def int_text(number: int) -> str:
    """Return an integer's exact decimal digits."""
    try:
        return int.__repr__(number)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        raise UnsupportedValue("an integer with too many digits to write") from None


def utf16_order(key: str) -> bytes:
    """Return a sort key that orders strings by UTF-16 code units."""
    return clean_text(key).encode("utf-16-be")


def write(tree: Any) -> str:
    """Return the RFC 8785 text of a JSON-native tree.

    Non-finite floats are written as the strings "NaN", "Infinity" and
    "-Infinity"; integers of any size as their exact digits.
    """
    kind = type(tree)
    if kind is str:
        return _quote(clean_text(tree))
    if kind is dict:
        return _write_object(tree)
    if kind is list:
        return "[" + ",".join([write(item) for item in tree]) + "]"
    if kind is float:
        if tree - tree == 0.0:
            return number_text(tree)
        return '"' + nonfinite_name(tree) + '"'
    if kind is bool:
        return "true" if tree else "false"
    if kind is int:
        return int_text(tree)
    if tree is None:
        return "null"

    raise UnsupportedValue(
        f"canonical text takes a normalised tree, not {type(tree).__name__}; "
        "call normalize() first"
    )


def _write_object(mapping: dict) -> str:
    keys = list(mapping)
    for key in keys:
        if type(key) is not str:
            raise UnsupportedValue(
                f"canonical text takes str keys, not {type(key).__name__}; "
                "call normalize() first"
            )
    keys.sort(key=utf16_order if _has_astral(keys) else None)

    members = [_quote(clean_text(key)) + ":" + write(mapping[key]) for key in keys]
    return "{" + ",".join(members) + "}"


def _has_astral(keys: list[str]) -> bool:
    """Tell whether a key holds a character beyond U+FFFF (a UTF-16 pair)."""
    return any(not key.isascii() and max(key) > "\uffff" for key in keys)
