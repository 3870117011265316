"""Parsed JSON request and response bodies to rows and outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import InvalidRecord
from ._outputs import prediction_data
from ._shapes import (
    PredictionData,
    Row,
    as_row,
    json_kind,
    named_row,
    rows_from_columns,
    rows_from_sequence,
)

__all__ = ["outputs_from_body", "rows_from_body"]

_ENVELOPE_EXTRAS = frozenset({"signature_name", "params", "parameters"})


_ROW_ENVELOPES = (
    "instances",
    "inputs",
    "dataframe_split",
    "dataframe_records",
    "features",
)


def rows_from_body(
    body: Any, *, feature_names: Sequence[str] | None = None
) -> list[Row]:
    """Map a parsed JSON request body to rows of features.

    ``{...}`` is one row; ``[{...}, ...]`` and ``[[...], ...]`` are rows; a
    list of numbers is one row. Envelopes, alone in their object or beside
    ``signature_name`` / ``params`` / ``parameters``: ``{"instances": [...]}``
    and ``{"inputs": [...]}`` give one row per item (an item that is a list
    is named by ``feature_names``, else ``f0``, ``f1``, ...; a bare scalar is
    a one-column row); ``{"inputs": {"col": [...]}}`` is columnar;
    ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` and
    ``{"dataframe_records": [...]}`` are rows; ``{"features": {...}}`` is
    one row. Raise InvalidRecord naming the problem for anything else.
    """
    if isinstance(body, Mapping):
        return _rows_from_object(body, feature_names)

    if isinstance(body, list):
        rows = rows_from_sequence(body, feature_names, "request body")
        if rows is None:
            raise InvalidRecord(
                "request body: a JSON array must hold objects, arrays or "
                "numbers, not a mix or other values"
            )
        return rows

    raise InvalidRecord(
        f"request body is a {json_kind(body)}, not a JSON object or array"
    )


def outputs_from_body(
    body: Any,
    n_rows: int,
    *,
    class_names: Sequence[Any] | None = None,
) -> list[PredictionData] | None:
    """Map a parsed JSON response body to one prediction_data per row.

    Accepts the request shapes plus ``{"predictions": [...]}`` (other keys
    beside it are ignored) and ``{"outputs": ...}``. With one row, a scalar,
    an object or a ``[value, {label: probability}]`` pair is that row's
    output. Return None when the body does not hold exactly ``n_rows``
    outputs, so the caller can warn and record nothing unpairable. Raise
    InvalidRecord for an item it cannot read (probabilities that do not
    match ``class_names``, say).
    """
    items = _output_items(body, n_rows)
    if items is None:
        return None

    return [prediction_data(item, class_names=class_names) for item in items]


def _rows_from_object(
    body: Mapping[Any, Any], feature_names: Sequence[str] | None
) -> list[Row]:
    """Rows of a JSON object: an envelope, or else one plain row."""
    key = _envelope_key(body, _ROW_ENVELOPES)
    if key is None:
        return [as_row(body)]

    inner = body[key]
    if key == "features":
        if isinstance(inner, Mapping):
            return [as_row(inner)]
        return [as_row(body)]

    if key == "dataframe_split":
        return _rows_from_split(inner, feature_names)

    if key == "inputs" and isinstance(inner, Mapping):
        return rows_from_columns(inner, "inputs")

    if not isinstance(inner, list):
        raise InvalidRecord(f"{key} must be a JSON array, not a {json_kind(inner)}")

    return _rows_from_instances(inner, feature_names, key)


def _envelope_key(body: Mapping[Any, Any], keys: Sequence[str]) -> str | None:
    """Return the envelope key wrapping ``body``, or None for a plain row."""
    for key in keys:
        if key not in body:
            continue
        if all(other == key or other in _ENVELOPE_EXTRAS for other in body):
            return key
        return None

    return None


def _rows_from_instances(
    items: list[Any], feature_names: Sequence[str] | None, where: str
) -> list[Row]:
    """One row per instance: an object, an array of values or a scalar."""
    rows = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            rows.append(as_row(item))
        elif isinstance(item, list | tuple):
            rows.append(named_row(item, feature_names, f"{where}[{index}]"))
        else:
            rows.append(named_row((item,), feature_names, f"{where}[{index}]"))

    return rows


def _rows_from_split(split: Any, feature_names: Sequence[str] | None) -> list[Row]:
    """Rows of a pandas ``orient="split"`` object."""
    if not isinstance(split, Mapping):
        raise InvalidRecord(
            f"dataframe_split must be a JSON object, not a {json_kind(split)}"
        )

    data = split.get("data")
    if not isinstance(data, list):
        raise InvalidRecord("dataframe_split.data must be a JSON array")

    columns = split.get("columns", feature_names)
    if columns is not None and not isinstance(columns, list | tuple):
        raise InvalidRecord("dataframe_split.columns must be a JSON array")

    rows = []
    for index, values in enumerate(data):
        if not isinstance(values, list | tuple):
            raise InvalidRecord(f"dataframe_split.data[{index}] is not an array")
        rows.append(named_row(values, columns, f"dataframe_split.data[{index}]"))

    return rows


def _output_items(body: Any, n_rows: int) -> list[Any] | None:
    """Split a response body into one raw output per row, or None."""
    if n_rows <= 0:
        return []

    if isinstance(body, Mapping):
        return _output_items_of_object(body, n_rows)

    if isinstance(body, list):
        if len(body) == n_rows:
            return body
        if n_rows == 1 and len(body) == 2 and isinstance(body[1], Mapping):
            return [(body[0], body[1])]
        return None

    return [body] if n_rows == 1 else None


def _output_items_of_object(body: Mapping[Any, Any], n_rows: int) -> list[Any] | None:
    """Outputs of a JSON object: an envelope, or one row's output."""
    inner = body.get("predictions")
    if inner is None and _envelope_key(body, ("outputs",)) == "outputs":
        inner = body["outputs"]
    if inner is not None:
        if isinstance(inner, Mapping):
            inner = rows_from_columns(inner, "predictions")
        if not isinstance(inner, list):
            inner = [inner]
        return inner if len(inner) == n_rows else None

    if _envelope_key(body, _ROW_ENVELOPES[:-1]) is not None:
        rows = _rows_from_object(body, None)
        return rows if len(rows) == n_rows else None

    return [body] if n_rows == 1 else None
