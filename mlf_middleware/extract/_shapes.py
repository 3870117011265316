"""Helpers the extract modules share: naming rows, reading arrays and frames."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache
from numbers import Real
from typing import Any

from ..exceptions import InvalidRecord

__all__ = [
    "PredictionData",
    "Row",
    "all_numbers",
    "array_values",
    "as_row",
    "default_names",
    "is_ndarray",
    "json_kind",
    "named_row",
    "plain_list",
    "plain_scalar",
    "rows_from_columns",
    "rows_from_frame",
    "rows_from_sequence",
]

Row = dict[str, Any]
PredictionData = dict[str, Any]


def rows_from_sequence(
    items: Sequence[Any], feature_names: Sequence[str] | None, where: str
) -> list[Row] | None:
    """Rows of a list: mappings, arrays of values, or numbers; else None."""
    if not items:
        return []

    first = items[0]
    if isinstance(first, Mapping):
        if not all(isinstance(item, Mapping) for item in items):
            return None
        return [as_row(item) for item in items]

    if isinstance(first, list | tuple) or is_ndarray(first):
        if not all(
            isinstance(item, list | tuple) or is_ndarray(item) for item in items
        ):
            return None
        return [
            named_row(plain_list(values), feature_names, f"{where}[{index}]")
            for index, values in enumerate(items)
        ]

    if all_numbers(items):
        return [named_row(items, feature_names, where)]

    return None


def rows_from_columns(columns: Mapping[Any, Any], where: str) -> list[Row]:
    """Rows of a columnar object ``{"col": [...]}``, or one row if not."""
    if not columns or not all(isinstance(column, list) for column in columns.values()):
        return [as_row(columns)]

    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1:
        raise InvalidRecord(
            f"{where}: columns have different lengths {sorted(lengths)}"
        )

    names = list(columns)
    return [
        dict(zip(names, values, strict=False))
        for values in zip(*columns.values(), strict=True)
    ]


def named_row(
    values: Sequence[Any], feature_names: Sequence[str] | None, where: str
) -> Row:
    """Name an array of values by ``feature_names``, else f0, f1, ..."""
    names = feature_names
    if names is None:
        names = default_names(len(values))
    elif len(names) != len(values):
        raise InvalidRecord(f"{where} has {len(values)} values for {len(names)} names")

    return dict(zip(names, values, strict=True))


@lru_cache(maxsize=64)
def default_names(count: int) -> tuple[str, ...]:
    """Column names f0, f1, ... for values that come without names."""
    return tuple(f"f{index}" for index in range(count))


def as_row(mapping: Mapping[Any, Any]) -> Row:
    """A mapping as a row: a dict stays the same object (no copy)."""
    return mapping if isinstance(mapping, dict) else dict(mapping)


_PLAIN_NUMBERS = frozenset({int, float})


def all_numbers(values: Sequence[Any]) -> bool:
    """Whether every item is a real number (bools are not numbers here)."""
    return all(
        type(value) in _PLAIN_NUMBERS  # the common case, without ABC checks
        or (isinstance(value, Real) and not isinstance(value, bool))
        for value in values
    )


def is_ndarray(value: Any) -> bool:
    """Whether value is a numpy array, without importing numpy."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def plain_list(value: Any) -> Any:
    """A numpy array as a list of Python values; anything else unchanged."""
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    if is_ndarray(value) and value.ndim >= 1:
        return value.tolist()

    return value


def plain_scalar(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        return item()

    return value


def json_kind(value: Any) -> str:
    """The JSON-ish kind of a value, for error messages without contents."""
    names = {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def array_values(array: Any) -> list[Any]:
    """An array as nested lists: Python numbers for numeric dtypes.

    ``tolist()`` gives the same numbers and strings the normaliser would
    (float32 kept as the double it holds; numpy.str_ as str, which also
    keeps records on the encoder's fast path); other dtypes (datetime64
    would become integers) keep their numpy values for the normaliser.
    """
    if array.dtype.kind in "biufU":
        return array.tolist()

    return [list(row) if array.ndim > 1 else row for row in array]


def rows_from_frame(frame: Any) -> list[Row]:
    """One row per DataFrame row, keyed by column name."""
    if not frame.columns.is_unique:
        raise InvalidRecord("DataFrame has duplicate column names")

    # Column by column is faster than to_dict("records") and gives the same
    # Python values (Series.tolist boxes numpy scalars as to_dict does).
    names = list(frame.columns)
    columns = [column.tolist() for _, column in frame.items()]
    if not names:
        return [{} for _ in range(len(frame))]

    rows = zip(*columns)  # noqa: B905 (columns of one frame are equally long)
    return [dict(zip(names, values, strict=True)) for values in rows]
