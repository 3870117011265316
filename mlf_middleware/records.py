"""Prediction and Actual records, their ids and their JSON wire form."""

from __future__ import annotations

import itertools
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from . import hashing
from .exceptions import InvalidRecord

__all__ = [
    "SCHEMA_VERSION",
    "Actual",
    "Prediction",
    "encode",
    "from_wire",
    "new_record_id",
    "utc",
]

SCHEMA_VERSION = 1

# record_id = a random per-process prefix and a counter: unique without a
# system call per record. A forked child draws a new prefix (see below), so
# parent and child never hand out the same id.
_prefix = secrets.token_hex(6)
_counter = itertools.count(1)


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix = secrets.token_hex(6)
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_new_prefix)


def new_record_id() -> str:
    """Return a record id unique across processes and time."""
    return f"{_prefix}-{next(_counter):x}"


_second_cache: tuple[int, str] = (-1, "")


def now_text() -> str:
    """Now, in the wire form's RFC 3339 UTC text (cheap: the seconds part of
    the text is cached, since many records share a second)."""
    global _second_cache
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached_second, prefix = _second_cache
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_cache = (seconds, prefix)

    return f"{prefix}.{nanos // 1000:06d}Z"


def utc(value: datetime | None, *, field_name: str = "occurred_at") -> datetime:
    """Return ``value`` as an aware UTC datetime; None means now."""
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, datetime):
        raise InvalidRecord(
            f"{field_name} must be a datetime, not {type(value).__name__}"
        )
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)

    return value.astimezone(UTC)


def _check_data_id(data_id: object) -> None:
    if not isinstance(data_id, str) or not data_id:
        raise InvalidRecord(f"data_id must be a non-empty string, got {data_id!r:.40}")


def check_prediction_data(prediction_data: object) -> None:
    """Raise InvalidRecord unless ``prediction_data`` follows the contract."""
    if type(prediction_data) is not dict and not isinstance(prediction_data, Mapping):
        raise InvalidRecord(
            "prediction_data must be a mapping with a 'value', not "
            f"{type(prediction_data).__name__}"
        )
    if "value" not in prediction_data:
        raise InvalidRecord("prediction_data must have a 'value' key")
    if prediction_data["value"] is None and not prediction_data.get("error"):
        raise InvalidRecord("prediction_data['value'] may be None only with an 'error'")
    for key in ("probabilities", "shap_values"):
        extra = prediction_data.get(key)
        if extra is None or type(extra) is dict:
            continue
        if not isinstance(extra, Mapping):
            raise InvalidRecord(
                f"prediction_data[{key!r}] must be a mapping, not "
                f"{type(extra).__name__}"
            )


def _check_latency(latency_ms: object) -> None:
    if latency_ms is None:
        return
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, int | float):
        raise InvalidRecord("latency_ms must be a number of milliseconds")
    if not math.isfinite(latency_ms) or latency_ms < 0:
        raise InvalidRecord("latency_ms must be finite and not negative")


@dataclass(frozen=True, slots=True)
class Prediction:
    """One model output for one row of features (mlfoundry's field names).

    ``occurred_at`` defaults to now and is kept as aware UTC; a naive value is
    taken as UTC. When ``actual_value`` is given, an :class:`Actual` for the
    same ``data_id`` is recorded together with the prediction.
    """

    data_id: str
    features: Mapping[str, Any]
    prediction_data: Mapping[str, Any]
    occurred_at: datetime | None = None
    raw_data: Mapping[str, Any] | None = None
    model_version_fqn: str | None = None
    latency_ms: float | None = None
    actual_value: Any = None
    record_id: str = field(default_factory=new_record_id)

    def __post_init__(self) -> None:
        _check_data_id(self.data_id)
        if not isinstance(self.features, Mapping):
            raise InvalidRecord(
                "features must be a mapping of feature name to value, not "
                f"{type(self.features).__name__}"
            )
        check_prediction_data(self.prediction_data)
        if self.raw_data is not None and not isinstance(self.raw_data, Mapping):
            raise InvalidRecord("raw_data must be a mapping or None")
        _check_latency(self.latency_ms)
        object.__setattr__(self, "occurred_at", utc(self.occurred_at))

    def to_wire(self) -> dict[str, Any]:
        """Return the wire-form mapping (values not yet normalised)."""
        return {
            "type": "prediction",
            "schema": SCHEMA_VERSION,
            "record_id": self.record_id,
            "data_id": self.data_id,
            "model_version_fqn": self.model_version_fqn,
            "occurred_at": self.occurred_at,
            "features": self.features,
            "prediction_data": self.prediction_data,
            "raw_data": self.raw_data,
            "latency_ms": self.latency_ms,
            "actual_value": self.actual_value,
        }


@dataclass(frozen=True, slots=True)
class Actual:
    """The true outcome for a ``data_id``, usually known later."""

    data_id: str
    value: Any
    occurred_at: datetime | None = None
    model_version_fqn: str | None = None
    record_id: str = field(default_factory=new_record_id)

    def __post_init__(self) -> None:
        _check_data_id(self.data_id)
        object.__setattr__(self, "occurred_at", utc(self.occurred_at))

    def to_wire(self) -> dict[str, Any]:
        """Return the wire-form mapping (values not yet normalised)."""
        return {
            "type": "actual",
            "schema": SCHEMA_VERSION,
            "record_id": self.record_id,
            "data_id": self.data_id,
            "model_version_fqn": self.model_version_fqn,
            "occurred_at": self.occurred_at,
            "value": self.value,
        }


def from_wire(obj: Mapping[str, Any]) -> Prediction | Actual:
    """Rebuild a record from its decoded wire form (what sinks receive)."""
    kind = obj.get("type")
    occurred_at = datetime.fromisoformat(obj["occurred_at"])
    if kind == "prediction":
        return Prediction(
            data_id=obj["data_id"],
            features=obj["features"],
            prediction_data=obj["prediction_data"],
            occurred_at=occurred_at,
            raw_data=obj.get("raw_data"),
            model_version_fqn=obj.get("model_version_fqn"),
            latency_ms=obj.get("latency_ms"),
            actual_value=obj.get("actual_value"),
            record_id=obj["record_id"],
        )
    if kind == "actual":
        return Actual(
            data_id=obj["data_id"],
            value=obj.get("value"),
            occurred_at=occurred_at,
            model_version_fqn=obj.get("model_version_fqn"),
            record_id=obj["record_id"],
        )

    raise InvalidRecord(f"unknown record type {kind!r:.40}")


def encode(record: Prediction | Actual) -> bytes:
    """Return the record's wire form as strict JSON bytes (normalised values)."""
    wire = record.to_wire()
    wire["occurred_at"] = hashing.format_timestamp(wire["occurred_at"])

    return encode_wire(wire)


# Types orjson would write in a form other than the normaliser's (dates,
# dataclasses, subclasses such as numpy.float64 or str enums) make it raise
# instead, and so take the normaliser's path.
_PLAIN_ONLY = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def encode_wire(wire: dict[str, Any]) -> bytes:
    """Return strict JSON bytes of a wire mapping whose values may be raw.

    Most records hold only plain JSON values; orjson writes those directly.
    orjson refuses what needs converting (numpy, Decimal, bytes, non-str
    keys, lone surrogates, huge ints...), but writes a float NaN or infinity
    as ``null``: so a ``null`` that the top-level Nones do not explain also
    sends the record through the normaliser, which writes "NaN" and friends.
    """
    try:
        data = orjson.dumps(wire, option=_PLAIN_ONLY)
    except TypeError:
        data = None
    if data is not None and b"null" in data:
        expected = list(wire.values()).count(None)
        if data.count(b"null") != expected:
            data = None
    if data is not None:
        # orjson's bytes keep a 4 KiB buffer whatever their length (seen with
        # orjson 3.13): a copy of the exact size keeps queued records small.
        return bytes(memoryview(data))

    tree = {
        key: value
        if value is None or key in _SCALAR_FIELDS
        else hashing.normalize(value, path=key)
        for key, value in wire.items()
    }
    return bytes(memoryview(hashing.dumps(tree)))


_SCALAR_FIELDS = frozenset({"type", "schema", "record_id", "occurred_at"})
