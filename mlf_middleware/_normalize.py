"""Step 1 of the data_id scheme: any supported value to a JSON-native tree."""

from __future__ import annotations

import base64
import dataclasses
import sys
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from itertools import islice
from json.encoder import encode_basestring as _quote
from typing import Any
from uuid import UUID

from ._canonical import (
    clean_text,
    int_text,
    nonfinite_name,
    number_text,
    utf16_order,
    write,
)
from .exceptions import InvalidRecord, MLFError, UnsupportedValue

__all__ = ["MAX_DEPTH", "format_timestamp", "key_text", "normalize_tree"]

MAX_DEPTH = 200  # nested containers; deeper is refused (or a value holds itself)

_HINTS = {
    timedelta: " (convert durations to a number, e.g. .total_seconds())",
    time: " (a time of day has no agreed JSON form; pass a string)",
    complex: " (pass the real and imaginary parts as two numbers)",
}


class _Refusal(Exception):
    """Carry a refusal up the tree, gathering the path to the value."""

    def __init__(self, error: type[MLFError], message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.steps: list[str] = []

    def raise_at(self, root: str) -> None:
        place = root + "".join(reversed(self.steps))
        raise self.error(f"{self.message} at {place}") from None


def normalize_tree(value: Any, path: str, *, keep_nonfinite: bool) -> Any:
    """Return the JSON-native tree of ``value``; see hashing.normalize.

    With ``keep_nonfinite`` float NaN and infinities stay floats (for the
    mlfoundry scheme, whose json writes them as bare NaN tokens).
    """
    try:
        return _value(value, keep_nonfinite, 0)
    except _Refusal as refusal:
        refusal.raise_at(path)
    except RecursionError:
        raise InvalidRecord(f"{path} is nested too deeply") from None


def format_timestamp(dt: datetime) -> str:
    """Return ``dt`` as RFC 3339 UTC with microseconds and a Z.

    A naive datetime is taken as UTC; a pandas Timestamp is cut to
    microseconds.
    """
    if not isinstance(dt, datetime):
        raise UnsupportedValue(
            f"timestamp must be a datetime, not {_type_name(dt)}"
        )
    if dt != dt:  # pandas NaT
        raise InvalidRecord("timestamp is NaT (not a time)")
    if dt.tzinfo is not None:
        try:
            dt = dt.astimezone(UTC)
        except (OverflowError, ValueError):
            raise InvalidRecord("timestamp is out of range in UTC") from None

    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:"
        f"{dt.minute:02d}:{dt.second:02d}.{dt.microsecond:06d}Z"
    )


def _value(value: Any, keep: bool, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if keep or value - value == 0.0 else nonfinite_name(value)
    if kind is dict:
        return _mapping(value, keep, depth + 1, copy=False)
    if kind is list:
        return _sequence(value, keep, depth + 1, copy=False)
    if kind is tuple:
        return _sequence(value, keep, depth + 1, copy=True)

    return _other(value, keep, depth)


def _mapping(mapping: Mapping, keep: bool, depth: int, *, copy: bool) -> dict:
    """Normalise keys and values, copying only once something changes."""
    _check_depth(depth)
    out: dict | None = {} if copy else None
    unchanged = 0
    for key, item in mapping.items():
        try:
            text = key if type(key) is str and clean_text(key) is key else key_text(key)
            new = _value(item, keep, depth)
        except _Refusal as refusal:
            refusal.steps.append(_step(key))
            raise
        if out is None:
            if text is key and new is item:
                unchanged += 1
                continue
            out = dict(islice(mapping.items(), unchanged))
        if text in out:
            raise _collision(mapping, key, text)
        out[text] = new

    return mapping if out is None else out  # type: ignore[return-value]


def _sequence(items: Sequence, keep: bool, depth: int, *, copy: bool) -> list:
    """Normalise items; a list is copied only once an item changes."""
    _check_depth(depth)
    out: list | None = [] if copy else None
    index = 0
    try:
        for index, item in enumerate(items):
            new = _value(item, keep, depth)
            if out is None:
                if new is item:
                    continue
                out = items[:index]  # type: ignore[assignment]
            out.append(new)
    except _Refusal as refusal:
        refusal.steps.append(f"[{index}]")
        raise

    return items if out is None else out  # type: ignore[return-value]


def _set(items: Set, keep: bool, depth: int) -> list:
    """A set has no order: sort its items by their canonical text."""
    _check_depth(depth)
    try:
        values = [_value(item, keep, depth) for item in items]
    except _Refusal as refusal:
        refusal.steps.append("[*]")
        raise

    return sorted(values, key=lambda tree: utf16_order(write(tree)))


def _other(value: Any, keep: bool, depth: int) -> Any:
    """Convert every type that is not JSON-native already."""
    if isinstance(value, Enum):
        return _value(value.value, keep, depth)
    if isinstance(value, str):
        return clean_text(str.__str__(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _value(float(value), keep, depth)
    if isinstance(value, datetime):
        return None if value != value else _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        number = float("nan") if value.is_nan() else float(value)
        return _value(number, keep, depth)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")

    converted = _from_libraries(value, keep, depth)
    if converted is not _UNKNOWN:
        return converted
    return _from_shape(value, keep, depth)


_UNKNOWN = object()


def _from_libraries(value: Any, keep: bool, depth: int) -> Any:
    """Convert numpy and pandas values, without importing either."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.generic):
            return _numpy_scalar(value, keep, depth)
        if isinstance(value, numpy.ndarray):
            return _numpy_array(value, keep, depth)
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if value is pandas.NA:
            return None
        if isinstance(value, pandas.DataFrame):
            raise _Refusal(
                UnsupportedValue,
                "a pandas DataFrame is not a value (pass its rows as mappings)",
            )

    return _UNKNOWN


def _from_shape(value: Any, keep: bool, depth: int) -> Any:
    """Convert mappings, records and collections; refuse anything else."""
    if isinstance(value, Mapping):
        return _mapping(value, keep, depth + 1, copy=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _mapping(fields, keep, depth + 1, copy=False)
    if _is_pydantic(value):
        return _value(value.model_dump(), keep, depth + 1)
    if isinstance(value, Set):
        return _set(value, keep, depth + 1)
    if isinstance(value, Sequence):
        return _sequence(value, keep, depth + 1, copy=True)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):
        # pandas Series, Index and extension arrays: their items as Python
        # objects (Timestamps, pandas.NA, ...), converted like any other
        return _sequence(value.tolist(), keep, depth + 1, copy=False)

    hint = next((h for t, h in _HINTS.items() if isinstance(value, t)), "")
    raise _Refusal(UnsupportedValue, f"unsupported type {_type_name(value)}{hint}")


def _numpy_scalar(value: Any, keep: bool, depth: int) -> Any:
    kind = value.dtype.kind
    if kind == "b":
        return bool(value)
    if kind in "iu":
        return int(value)
    if kind == "f":
        return _value(float(value), keep, depth)
    if kind == "M":
        return _datetime64(value)
    hint = " (pass the real and imaginary parts as two numbers)" if kind == "c" else ""
    raise _Refusal(UnsupportedValue, f"unsupported type {_type_name(value)}{hint}")


def _numpy_array(array: Any, keep: bool, depth: int) -> Any:
    if array.ndim == 0:
        return _value(array[()], keep, depth)
    if array.dtype.kind in "biufUSO":
        # tolist() gives Python numbers, exact for every float width
        return _sequence(array.tolist(), keep, depth + 1, copy=False)

    return _sequence(list(array), keep, depth + 1, copy=False)


def _datetime64(value: Any) -> str | None:
    numpy = sys.modules["numpy"]
    if numpy.isnat(value):
        return None
    moment = value.astype("datetime64[us]").item()
    if not isinstance(moment, datetime):  # numpy gives an int past year 9999
        raise _Refusal(InvalidRecord, "a numpy.datetime64 outside years 1 to 9999")

    return format_timestamp(moment)


def _timestamp(value: datetime) -> str:
    try:
        return format_timestamp(value)
    except MLFError as exc:
        raise _Refusal(type(exc), str(exc)) from None


def _is_pydantic(value: Any) -> bool:
    cls = type(value)
    return hasattr(cls, "__pydantic_fields__") and hasattr(cls, "model_dump")


def key_text(key: Any) -> str:
    """Return the string a mapping key becomes (SPEC section 3, step 1)."""
    if key is True or key is False or key is None:
        return "null" if key is None else ("true" if key else "false")
    try:
        value = _value(key, False, 0)
    except _Refusal:
        return clean_text(str(key))

    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is int:
        return int_text(value)
    if kind is float:
        return number_text(value)
    return write(value)  # a tuple or frozenset key: its canonical text


def _collision(mapping: Mapping, key: Any, text: str) -> _Refusal:
    others = [k for k in mapping if k is not key and _key_or_none(k) == text]
    other = others[0] if others else key
    return _Refusal(
        InvalidRecord,
        f"keys {other!r} and {key!r} both become the key {_quote(text)}",
    )


def _key_or_none(key: Any) -> str | None:
    try:
        return key if type(key) is str and clean_text(key) is key else key_text(key)
    except MLFError:
        return None


def _step(key: Any) -> str:
    return f"[{_quote(key)}]" if isinstance(key, str) else f"[{key!r}]"


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Refusal(
            InvalidRecord,
            f"nesting deeper than {MAX_DEPTH} (or a value that contains itself)",
        )


def _type_name(value: Any) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
