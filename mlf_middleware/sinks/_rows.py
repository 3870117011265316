"""Rows of the store sinks (SQLite, PostgreSQL, Parquet), to records and back.

Every store keeps predictions as ``PREDICTION_COLUMNS`` and actuals as
``ACTUAL_COLUMNS``, in that order, with JSON values as text; a ``joined()``
query returns a prediction's columns (without ``actual_value``) followed by
the latest actual's record_id, value and time. Only the time column's type
differs between stores, so each sink passes how to read it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from .. import hashing
from ..records import Actual, Prediction, from_wire

__all__ = [
    "ACTUAL_COLUMNS",
    "PREDICTION_COLUMNS",
    "actual_of",
    "actual_values",
    "from_json",
    "joined_row",
    "json_text",
    "prediction_of",
    "prediction_values",
]

PREDICTION_COLUMNS = (
    "record_id",
    "data_id",
    "model_version_fqn",
    "occurred_at",
    "features",
    "prediction_data",
    "raw_data",
    "latency_ms",
    "actual_value",
)
ACTUAL_COLUMNS = ("record_id", "data_id", "model_version_fqn", "occurred_at", "value")

Moment = Callable[[Any], datetime]


def json_text(value: Any) -> str | None:
    """A JSON value as stored text (None stays SQL NULL)."""
    return None if value is None else orjson.dumps(value).decode("utf-8")


def from_json(text: str | None) -> Any:
    """Stored JSON text back to its value."""
    return None if text is None else orjson.loads(text)


def prediction_values(wire: dict[str, Any]) -> tuple[Any, ...]:
    """The column values of a decoded prediction wire record."""
    return (
        wire["record_id"],
        wire["data_id"],
        wire.get("model_version_fqn"),
        wire["occurred_at"],
        json_text(wire.get("features")),
        json_text(wire.get("prediction_data")),
        json_text(wire.get("raw_data")),
        wire.get("latency_ms"),
        json_text(wire.get("actual_value")),
    )


def actual_values(wire: dict[str, Any]) -> tuple[Any, ...]:
    """The column values of a decoded actual wire record."""
    return (
        wire["record_id"],
        wire["data_id"],
        wire.get("model_version_fqn"),
        wire["occurred_at"],
        json_text(wire.get("value")),
    )


def prediction_of(row: tuple[Any, ...], moment: Moment) -> Prediction | Actual:
    """A stored prediction row back to its record."""
    return from_wire(
        {
            "type": "prediction",
            "record_id": row[0],
            "data_id": row[1],
            "model_version_fqn": row[2],
            "occurred_at": hashing.format_timestamp(moment(row[3])),
            "features": from_json(row[4]),
            "prediction_data": from_json(row[5]),
            "raw_data": from_json(row[6]),
            "latency_ms": row[7],
            "actual_value": from_json(row[8]),
        }
    )


def actual_of(row: tuple[Any, ...], moment: Moment) -> Prediction | Actual:
    """A stored actual row back to its record."""
    return from_wire(
        {
            "type": "actual",
            "record_id": row[0],
            "data_id": row[1],
            "model_version_fqn": row[2],
            "occurred_at": hashing.format_timestamp(moment(row[3])),
            "value": from_json(row[4]),
        }
    )


def joined_row(row: tuple[Any, ...], moment: Moment) -> dict[str, Any]:
    """A ``joined()`` result row: the prediction and its latest actual."""
    actual = None
    if row[8] is not None:
        actual = {
            "record_id": row[8],
            "value": from_json(row[9]),
            "occurred_at": moment(row[10]),
        }
    return {
        "record_id": row[0],
        "data_id": row[1],
        "model_version_fqn": row[2],
        "occurred_at": moment(row[3]),
        "features": from_json(row[4]),
        "prediction_data": from_json(row[5]),
        "raw_data": from_json(row[6]),
        "latency_ms": row[7],
        "actual": actual,
    }
