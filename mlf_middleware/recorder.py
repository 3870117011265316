"""The Recorder: the one door on the caller's side, and the default recorder.

Every prediction and actual enters through ``Recorder.record`` or
``Recorder.record_actual`` (``log_predictions`` and ``log_actuals`` use them
too). On the caller's thread, in this order: the data_id from the raw
features, sampling from the data_id, redaction, one encoding, the size cap,
and the hand-off to each sink's channel. Nothing there waits on a sink or
raises into the caller.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import os
import re
import threading
import time
import weakref
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import hashing, metrics
from ._channel import Channel
from ._logging import RateLimitedLog
from ._redact import apply_redaction, parse_paths
from .config import (
    check_recorder_options,
    check_timeout,
    env_flag,
    env_float,
    env_str,
)
from .exceptions import ConfigError, InvalidRecord, MLFError
from .records import (
    SCHEMA_VERSION,
    Actual,
    Prediction,
    check_prediction_data,
    encode_wire,
    new_record_id,
    now_text,
    utc,
)
from .sinks import open_sink, resolve_url, sink_name
from .spool import default_spool_root

__all__ = [
    "Recorder",
    "configure",
    "get_client",
    "get_recorder",
    "log_actual",
    "log_actuals",
    "log_predictions",
]

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)

_live: weakref.WeakSet[Recorder] = weakref.WeakSet()


class _Tally:
    """A counter that threads may bump without a lock.

    ``next()`` on an ``itertools.count`` is one atomic step in CPython, so
    the caller's thread pays no lock for it; the value is read back from
    the counter's repr, ``count(N)``.
    """

    __slots__ = ("_count", "add")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.add = self._count.__next__

    @property
    def value(self) -> int:
        return int(repr(self._count)[6:-1])


class Recorder:
    """Record predictions and actuals to one or more sinks in the background.

    Args:
        sink: a sink object, a sink URL, or a list of them; None means
            ``MLF_SINK``, else ``sqlite:///mlf_predictions.db``.
        model_version_fqn: default model name stamped on records without one.
        sample_rate: share of data_ids kept (0 to 1), decided from the data_id
            so a kept prediction always keeps its actual.
        redact: feature paths (``"user.email"``) replaced by ``[REDACTED]``
            before encoding; a path starting ``raw_data.`` applies to raw_data.
        batch_size: records per sink write.
        max_delay: seconds a record may wait for its batch to fill.
        max_queue_records, max_queue_bytes: bounds of each sink's queue.
        max_record_bytes: larger encoded records are dropped (``too_large``).
        overflow: what a full queue does: ``spill`` to the disk spool
            (default), ``drop_newest``, ``drop_oldest`` (both counted as
            ``queue_full``), or ``block`` for up to ``block_timeout`` seconds
            and then spill (on an event-loop thread it spills at once).
        block_timeout: seconds a caller may wait under ``overflow="block"``.
        spool_dir: folder for spool and dead-letter files; None means
            ``MLF_SPOOL_DIR``, else the user's cache folder; False turns the
            spool off (then a failing sink is retried in memory and a full
            queue drops).
        max_spool_bytes: size cap of each sink's spool (``spool_full``).
        flush_timeout: default seconds for flush/close; None means
            ``MLF_FLUSH_TIMEOUT``, else 5.
        enabled: False records nothing; None means not ``MLF_DISABLED``.
        clock: returns the time stamped on records (tests use a fixed one).
    """

    def __init__(
        self,
        sink: Any = None,
        *,
        model_version_fqn: str | None = None,
        sample_rate: float = 1.0,
        redact: Iterable[str] = (),
        batch_size: int = 512,
        max_delay: float = 0.2,
        max_queue_records: int = 100_000,
        max_queue_bytes: int = 64 * 1024 * 1024,
        max_record_bytes: int = 1024 * 1024,
        overflow: str = "spill",
        block_timeout: float = 1.0,
        spool_dir: str | os.PathLike[str] | bool | None = None,
        max_spool_bytes: int = 1024 * 1024 * 1024,
        flush_timeout: float | None = None,
        enabled: bool | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._options = check_recorder_options(locals())
        self.model_version_fqn = model_version_fqn
        self.sample_rate = float(sample_rate)
        self._redact = parse_paths(self._options["redact"])
        self._max_record_bytes = max_record_bytes
        self._flush_timeout = (
            env_float("MLF_FLUSH_TIMEOUT") if flush_timeout is None else flush_timeout
        )
        self._clock = clock
        self._enabled = not env_flag("MLF_DISABLED") if enabled is None else enabled
        self._sink_specs = _sink_specs(sink)
        self._channels: list[Channel] = []
        try:
            self._open_channels()
        except BaseException:
            # A later sink failed: release the spools and sinks already open.
            for channel in self._channels:
                channel.close(time.monotonic())
            raise
        self._lock = threading.Lock()
        self._counts = {
            key: _Tally() for key in ("captured", "sampled_out", "invalid", "too_large")
        }
        self._closed = False
        self._edge_drops: Counter[str] = Counter()
        _live.add(self)
        metrics.install(lambda: list(_live))

    def _open_channels(self) -> None:
        channels = self._channels
        names: Counter[str] = Counter()
        for spec in self._sink_specs:
            sink = open_sink(spec) if isinstance(spec, str) else spec
            name = sink_name(sink)
            names[name] += 1
            if names[name] > 1:
                name = f"{name}#{names[name]}"
            channels.append(
                Channel(
                    sink,
                    name=name,
                    batch_size=self._options["batch_size"],
                    max_delay=self._options["max_delay"],
                    max_queue_records=self._options["max_queue_records"],
                    max_queue_bytes=self._options["max_queue_bytes"],
                    overflow=self._options["overflow"],
                    block_timeout=self._options["block_timeout"],
                    spool_dir=self._spool_folder(sink, name),
                    max_spool_bytes=self._options["max_spool_bytes"],
                )
            )
        for channel in channels:
            channel.ensure_started()

    def _spool_folder(self, sink: Any, name: str) -> Path | None:
        """Each sink's own spool folder, named for the sink."""
        option = self._options["spool_dir"]
        if option is False:
            return None
        root = (
            default_spool_root()
            if option is None or option is True
            else Path(option).expanduser().absolute()
        )
        identity = str(getattr(sink, "url", None) or name)
        digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:10]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40]
        return root / f"{safe}-{digest}"

    @property
    def enabled(self) -> bool:
        """False when capture is off (``MLF_DISABLED``) or after close()."""
        return self._enabled and not self._closed

    @property
    def sinks(self) -> list[Any]:
        """The sink objects, in the order given."""
        return [channel.sink for channel in self._channels]

    # -- pickling: configuration only ----------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        options = {k: v for k, v in self._options.items() if k not in ("sink", "self")}
        return (_rebuild, (self._sink_specs, options))

    def __repr__(self) -> str:
        names = ", ".join(channel.name for channel in self._channels)
        return f"<Recorder sinks=[{names}] enabled={self.enabled}>"

    # -- the door ------------------------------------------------------------

    def record(
        self,
        features: Any,
        prediction_data: Mapping[str, Any],
        *,
        data_id: str | None = None,
        occurred_at: datetime | None = None,
        raw_data: Mapping[str, Any] | None = None,
        model_version_fqn: str | None = None,
        latency_ms: float | None = None,
        actual_value: Any = None,
        redact: Sequence[str] = (),
    ) -> str | None:
        """Record one prediction row; return its data_id. Never raises.

        With ``data_id=None`` the id is the canonical hash of the raw
        features. The id is returned also when sampling leaves the row out;
        None means the row could not be recorded (logged and counted).
        """
        if not self._enabled:
            return None

        stamp = self._safe_stamp(occurred_at)
        if stamp is None:
            return None
        model = model_version_fqn or self.model_version_fqn
        data_id, data = self._prepare(
            features,
            prediction_data,
            data_id,
            stamp,
            raw_data,
            model,
            latency_ms,
            actual_value,
            redact,
        )
        if data is not None:
            for channel in self._channels:
                channel.offer(data)
            if actual_value is not None:
                self._offer_actual(data_id, actual_value, stamp, model)
        return data_id

    def record_many(
        self,
        rows: Sequence[Any],
        outputs: Sequence[Mapping[str, Any]],
        *,
        data_ids: Sequence[str | None] | None = None,
        occurred_at: datetime | None = None,
        raw_data: Mapping[str, Any] | None = None,
        model_version_fqn: str | None = None,
        latency_ms: float | None = None,
        redact: Sequence[str] = (),
    ) -> list[str | None]:
        """Record a batch: row i with prediction_data ``outputs[i]``.

        As ``record`` for each row, with one timestamp and one hand-off per
        sink for the whole batch (the cheap way for DataFrames). Returns the
        data_ids in row order, None where a row could not be recorded.
        """
        if not self._enabled:
            return [None] * len(rows)
        if data_ids is None:
            data_ids = [None] * len(rows)
        if not len(rows) == len(outputs) == len(data_ids):
            self.count_dropped("unpaired", len(rows))
            warn.warning(
                "record_many",
                "record_many: %d rows, %d outputs and %d ids do not pair; "
                "nothing recorded",
                len(rows),
                len(outputs),
                len(data_ids),
            )
            return [None] * len(rows)

        stamp = self._safe_stamp(occurred_at, rows=len(rows))
        if stamp is None:
            return [None] * len(rows)
        model = model_version_fqn or self.model_version_fqn
        ids: list[str | None] = []
        encoded: list[bytes] = []
        for features, output, data_id in zip(rows, outputs, data_ids, strict=True):
            data_id, data = self._prepare(
                features,
                output,
                data_id,
                stamp,
                raw_data,
                model,
                latency_ms,
                None,
                redact,
            )
            ids.append(data_id)
            if data is not None:
                encoded.append(data)
        for channel in self._channels:
            channel.offer_many(encoded)
        return ids

    def _prepare(
        self,
        features: Any,
        prediction_data: Mapping[str, Any],
        data_id: str | None,
        stamp: str,
        raw_data: Mapping[str, Any] | None,
        model_version_fqn: str | None,
        latency_ms: float | None,
        actual_value: Any,
        redact: Sequence[str],
    ) -> tuple[str | None, bytes | None]:
        """The caller-side steps for one row: id, sampling, redaction, encoding.

        Returns the data_id (None if the row is invalid) and the encoded
        record (None when it is sampled out, invalid or too large).
        """
        self._count("captured")
        try:
            if type(features) is not dict and not isinstance(features, Mapping):
                raise InvalidRecord(
                    "features must be a mapping, not " + type(features).__name__
                )
            if data_id is None:
                data_id = hashing.generate_hash_from_data(features)
            elif type(data_id) is not str or not data_id:
                raise InvalidRecord("data_id must be a non-empty string")
            if self.sample_rate < 1.0 and not self._keep(data_id):
                self._count("sampled_out")
                return data_id, None
            check_prediction_data(prediction_data)
            wire = {
                "type": "prediction",
                "schema": SCHEMA_VERSION,
                "record_id": new_record_id(),
                "data_id": data_id,
                "model_version_fqn": model_version_fqn,
                "occurred_at": stamp,
                "features": features,
                "prediction_data": prediction_data,
                "raw_data": raw_data,
                "latency_ms": latency_ms,
                "actual_value": actual_value,
            }
            return data_id, self._encode(wire, redact)
        except Exception as exc:  # ours, or a user's value failing to convert
            self._drop_invalid(exc)
            return None, None

    def record_actual(
        self,
        data_id: str,
        value: Any,
        *,
        occurred_at: datetime | None = None,
        model_version_fqn: str | None = None,
    ) -> bool:
        """Record the true outcome for ``data_id``; never raises."""
        return self._accept_actual(
            data_id,
            value,
            occurred_at=occurred_at,
            model_version_fqn=model_version_fqn,
            record_id=None,
        )

    def _accept_actual(
        self,
        data_id: str,
        value: Any,
        *,
        occurred_at: datetime | None,
        model_version_fqn: str | None,
        record_id: str | None,
    ) -> bool:
        if not self._enabled:
            return False
        self._count("captured")

        try:
            if not isinstance(data_id, str) or not data_id:
                raise InvalidRecord("data_id must be a non-empty string")
            if not self._keep(data_id):
                self._count("sampled_out")
                return True
            wire = {
                "type": "actual",
                "schema": SCHEMA_VERSION,
                "record_id": record_id or new_record_id(),
                "data_id": data_id,
                "model_version_fqn": model_version_fqn or self.model_version_fqn,
                "occurred_at": self._stamp(occurred_at),
                "value": value,
            }
            self._encode_and_offer(wire)
        except Exception as exc:
            self._drop_invalid(exc)
            return False

        return True

    def _offer_actual(
        self, data_id: str, value: Any, stamp: str, model: str | None
    ) -> None:
        """Record the actual that came with its prediction (``actual_value``)."""
        self._count("captured")
        self._encode_and_offer(
            {
                "type": "actual",
                "schema": SCHEMA_VERSION,
                "record_id": new_record_id(),
                "data_id": data_id,
                "model_version_fqn": model,
                "occurred_at": stamp,
                "value": value,
            }
        )

    def _safe_stamp(self, occurred_at: Any, *, rows: int = 1) -> str | None:
        """The record time as wire text; None (counted) when it is unusable.

        A bad ``occurred_at`` or a clock that raises must not raise into
        the caller: those rows are counted as invalid.
        """
        if occurred_at is None and self._clock is None:
            return now_text()
        try:
            return self._stamp(occurred_at)
        except Exception as exc:
            for _ in range(rows):
                self._count("captured")
                self._drop_invalid(exc)
            return None

    def _stamp(self, occurred_at: datetime | None) -> str:
        if occurred_at is None:
            if self._clock is None:
                return now_text()
            occurred_at = self._clock()
        return hashing.format_timestamp(utc(occurred_at))

    def _keep(self, data_id: str) -> bool:
        rate = self.sample_rate
        if rate >= 1.0:
            return True

        return zlib.crc32(data_id.encode("utf-8")) < rate * 2**32

    def _encode(self, wire: dict[str, Any], redact: Sequence[str]) -> bytes | None:
        """Encode once: the snapshot that travels. None when too large."""
        paths = self._redact + parse_paths(tuple(redact)) if redact else self._redact
        if paths:
            for key in ("features", "raw_data"):
                if wire.get(key) is not None:
                    wire[key] = hashing.normalize(wire[key], path=key)
            apply_redaction(wire, paths)
        data = encode_wire(wire)

        if len(data) > self._max_record_bytes:
            self._count("too_large")
            warn.warning(
                "too_large",
                "record %s dropped: %d bytes is over max_record_bytes",
                wire["data_id"],
                len(data),
            )
            return None
        return data

    def _encode_and_offer(self, wire: dict[str, Any]) -> None:
        data = self._encode(wire, ())
        if data is not None:
            for channel in self._channels:
                channel.offer(data)

    def offer_encoded(self, data: bytes) -> None:
        """Hand an already-encoded record (its wire JSON) to every sink.

        For tools that move stored records (``mlf-middleware replay``): the
        record keeps its ids and time; no sampling or redaction is applied.
        """
        for channel in self._channels:
            channel.offer(data)

    def _drop_invalid(self, exc: BaseException) -> None:
        self._count("invalid")
        warn.warning(
            f"invalid:{type(exc).__name__}",
            "record not kept: %s: %s",
            type(exc).__name__,
            _safe_reason(exc),
        )

    def count_dropped(self, reason: str, n: int = 1) -> None:
        """Count ``n`` records an edge could not make, by ``reason``.

        For the decorator, the middleware and the adapters: an unreadable
        body, outputs that do not pair with the rows, a failing hook. Such
        records never reached the door, so they are not in ``captured``;
        they appear in ``dropped`` and ``dropped_by_reason``.
        """
        with self._lock:
            self._edge_drops[reason] += n

    def _count(self, key: str) -> None:
        self._counts[key].add()

    # -- mlfoundry's call shape ------------------------------------------------

    def log_predictions(
        self,
        predictions: Iterable[Prediction],
        *,
        model_version_fqn: str | None = None,
    ) -> list[str]:
        """Queue ``Prediction`` objects; return the data_ids kept."""
        ids: list[str] = []
        for prediction in _records_of(predictions, Prediction, "predictions"):
            kept = self._log_prediction(prediction, model_version_fqn)
            if kept is not None:
                ids.append(kept)
        return ids

    def _log_prediction(
        self, p: Prediction, model_version_fqn: str | None
    ) -> str | None:
        if not self._enabled:
            return None
        self._count("captured")

        try:
            if not self._keep(p.data_id):
                self._count("sampled_out")
                return p.data_id
            wire = p.to_wire()
            wire["occurred_at"] = hashing.format_timestamp(p.occurred_at)
            wire["model_version_fqn"] = (
                p.model_version_fqn or model_version_fqn or self.model_version_fqn
            )
            self._encode_and_offer(wire)
            if p.actual_value is not None:
                self._offer_actual(
                    p.data_id,
                    p.actual_value,
                    wire["occurred_at"],
                    wire["model_version_fqn"],
                )
        except Exception as exc:
            self._drop_invalid(exc)
            return None

        return p.data_id

    def log_actuals(
        self,
        actuals: Iterable[Actual],
        *,
        model_version_fqn: str | None = None,
    ) -> int:
        """Queue ``Actual`` objects; return how many were kept."""
        kept = 0
        for actual in _records_of(actuals, Actual, "actuals"):
            kept += self._accept_actual(
                actual.data_id,
                actual.value,
                occurred_at=actual.occurred_at,
                model_version_fqn=actual.model_version_fqn or model_version_fqn,
                record_id=actual.record_id,
            )
        return kept

    def log_actual(self, data_id: str, value: Any) -> bool:
        """Queue one actual for ``data_id``."""
        return self.record_actual(data_id, value)

    # -- lifecycle -----------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        if timeout is None:
            timeout = self._flush_timeout
        return time.monotonic() + check_timeout("timeout", timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record accepted before the call is written.

        ``timeout=None`` means the configured default, never forever. Return
        False when the deadline passed first.
        """
        deadline = self._deadline(timeout)
        done = True
        for channel in self._channels:
            done = channel.flush(deadline) and done
        return done

    def close(self, timeout: float | None = None) -> dict[str, Any]:
        """Flush within ``timeout``, stop the workers, return final stats().

        Idempotent; records offered afterwards are counted as dropped
        (``closed``), never raised.
        """
        deadline = self._deadline(timeout)
        with self._lock:
            self._closed = True
        for channel in self._channels:
            channel.close(deadline)

        return self.stats()

    def stats(self) -> dict[str, Any]:
        """Return the delivery figures, in total and per sink."""
        counts = {key: tally.value for key, tally in self._counts.items()}
        per_sink = {c.name: c.stats() for c in self._channels}
        local = {k: counts.get(k, 0) for k in ("invalid", "too_large") if counts.get(k)}
        by_reason: Counter[str] = Counter(local)
        with self._lock:
            by_reason.update(self._edge_drops)
        for figures in per_sink.values():
            by_reason.update(figures["dropped_by_reason"])

        total = {
            key: sum(s[key] for s in per_sink.values())
            for key in (
                "written",
                "rejected",
                "failed_writes",
                "retries",
                "spooled",
                "queue_size",
            )
        }
        return {
            "captured": counts.get("captured", 0),
            "sampled_out": counts.get("sampled_out", 0),
            **total,
            "dropped": sum(by_reason.values()),
            "dropped_by_reason": dict(by_reason),
            "sinks": per_sink,
        }


def _rebuild(specs: list[Any], options: dict[str, Any]) -> Recorder:
    return Recorder(specs if len(specs) != 1 else specs[0], **options)


def _sink_specs(sink: Any) -> list[Any]:
    if sink is None:
        sink = [s.strip() for s in (env_str("MLF_SINK") or "").split(",")]
    if isinstance(sink, str) or not isinstance(sink, Sequence):
        sink = [sink]
    specs = [s for s in sink if s != ""]
    if not specs:
        raise ConfigError("sink: no sink given")
    # Resolve relative paths now, so a copy unpickled elsewhere writes here.
    return [resolve_url(s) if isinstance(s, str) else s for s in specs]


def _records_of(items: Any, kind: type, name: str) -> list[Any]:
    if isinstance(items, kind):
        items = [items]
    try:
        records = list(items)
    except TypeError:
        raise InvalidRecord(f"{name} must be a list of {kind.__name__}") from None
    for item in records:
        if not isinstance(item, kind):
            raise InvalidRecord(
                f"{name} must hold {kind.__name__} objects, not {type(item).__name__}"
            )
    return records


def _safe_reason(exc: BaseException) -> str:
    """The error's message, trimmed: our messages name fields, not values."""
    return str(exc)[:200] if isinstance(exc, MLFError) else "conversion failed"


# -- the process-wide default recorder -----------------------------------------

_default: Recorder | None = None
_default_lock = threading.Lock()


def configure(sink: Any = None, **options: Any) -> Recorder:
    """Build the default recorder (closing the previous one) and return it."""
    global _default
    recorder = Recorder(sink, **options)
    with _default_lock:
        previous, _default = _default, recorder
    if previous is not None:
        previous.close()
    return recorder


def get_recorder() -> Recorder:
    """Return the default recorder, building it from the environment if needed."""
    global _default
    recorder = _default  # read without the lock: safe on an event loop
    if recorder is not None:
        return recorder
    with _default_lock:
        if _default is None:
            _default = Recorder()
        return _default


def get_client() -> Recorder:
    """Return the default recorder (mlfoundry's ``get_client`` call shape)."""
    return get_recorder()


def log_predictions(
    predictions: Iterable[Prediction], *, model_version_fqn: str | None = None
) -> list[str]:
    """Queue predictions on the default recorder."""
    return get_recorder().log_predictions(
        predictions, model_version_fqn=model_version_fqn
    )


def log_actuals(
    actuals: Iterable[Actual], *, model_version_fqn: str | None = None
) -> int:
    """Queue actuals on the default recorder."""
    return get_recorder().log_actuals(actuals, model_version_fqn=model_version_fqn)


def log_actual(data_id: str, value: Any) -> bool:
    """Queue one actual on the default recorder."""
    return get_recorder().log_actual(data_id, value)


@atexit.register
def _close_all_at_exit() -> None:
    for recorder in list(_live):
        try:
            recorder.close()
        except Exception:
            log.exception("closing a recorder at exit failed")
