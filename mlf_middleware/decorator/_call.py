"""The work ``capture`` does around one call, and its one boundary."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from .. import hashing
from .._logging import RateLimitedLog
from .._metadata import with_trace
from ..exceptions import MLFError
from ..extract import CallParameters, outputs_for_rows, rows_from_call
from ..recorder import get_recorder
from ._options import Settings

__all__ = ["Capture", "last_ids"]

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)

OTEL = "opentelemetry.trace"
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)

last_ids: ContextVar[tuple[str, ...]] = ContextVar(
    "mlf_middleware_last_data_ids", default=()
)


class Capture:
    """What one decorated callable does around each call.

    Holds only settings made at decoration: every call's state lives in the
    wrapper's locals, so threads and tasks never share a record.
    """

    __slots__ = ("_bound", "_free", "_name", "_settings")

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        free: CallParameters,
        bound: CallParameters,
    ) -> None:
        self._settings = settings
        self._name = name
        self._free = free
        self._bound = bound

    def recorder(self) -> Any:
        """The recorder for this call, or None when capture is off."""
        recorder = self._settings.recorder
        try:
            if recorder is None:
                recorder = get_recorder()
            return recorder if recorder.enabled else None
        except Exception as exc:
            self._skip(exc)
            return None

    def rows(self, instance: Any, args: tuple, kwargs: dict) -> list | None:
        """The call's rows of features, read before the call; None on failure."""
        settings = self._settings
        try:
            return rows_from_call(
                args,
                kwargs,
                parameters=self._free if instance is None else self._bound,
                features=settings.features,
                feature_names=settings.feature_names,
            )
        except Exception as exc:
            self._skip(exc)
            return None

    def succeeded(
        self, recorder: Any, rows: list | None, result: Any, latency_ms: float
    ) -> None:
        """Record one prediction per row of a call that returned ``result``."""
        if rows is None:
            last_ids.set(())
            return
        settings = self._settings
        try:
            outputs = outputs_for_rows(
                result,
                rows,
                outputs=settings.outputs,
                class_names=settings.class_names,
                model=settings.model,
            )
            if outputs is None:
                last_ids.set(())
                _count_dropped(recorder, "unpaired", len(rows))
                warn.warning(
                    f"unpaired:{self._name}",
                    "capture of %s: the result does not pair with its %d "
                    "rows; nothing recorded",
                    self._name,
                    len(rows),
                )
                return
            self._record(recorder, rows, outputs, latency_ms)
        except Exception as exc:
            self._skip(exc)

    def failed(
        self,
        recorder: Any,
        rows: list | None,
        error: BaseException,
        latency_ms: float,
    ) -> None:
        """Record a call that raised, when ``record_errors`` asks for it."""
        if rows is None or not self._settings.record_errors:
            last_ids.set(())
            return
        outputs = [{"value": None, "error": type(error).__name__} for _ in rows]
        try:
            self._record(recorder, rows, outputs, latency_ms)
        except Exception as exc:
            self._skip(exc)

    def _record(
        self,
        recorder: Any,
        rows: list,
        outputs: list,
        latency_ms: float,
    ) -> None:
        settings = self._settings
        raw_data = {"framework": "python", "function": self._name}
        if OTEL in sys.modules:  # no span can be active before it is imported
            with_trace(raw_data)
        mode = settings.id
        occurred_at = datetime.now(UTC) if mode == "hash+time" else None

        if len(rows) == 1:  # the common call: one row, no lists to build
            row = rows[0]
            data_id = recorder.record(
                row,
                outputs[0],
                data_id=None if mode == "hash" else self._data_id(row, occurred_at),
                occurred_at=occurred_at,
                raw_data=raw_data,
                model_version_fqn=settings.model_version_fqn,
                latency_ms=latency_ms,
                redact=settings.redact,
            )
            last_ids.set(() if data_id is None else (data_id,))
            return

        ids: list[Any]
        record_many = getattr(recorder, "record_many", None)
        if record_many is None:
            ids = [
                recorder.record(
                    row,
                    output,
                    data_id=None if mode == "hash" else self._data_id(row, occurred_at),
                    occurred_at=occurred_at,
                    raw_data=raw_data,
                    model_version_fqn=settings.model_version_fqn,
                    latency_ms=latency_ms,
                    redact=settings.redact,
                )
                for row, output in zip(rows, outputs, strict=True)
            ]
        else:  # a batch: one timestamp and one hand-off for all its rows
            ids = record_many(
                rows,
                outputs,
                data_ids=None
                if mode == "hash"
                else [self._data_id(row, occurred_at) for row in rows],
                occurred_at=occurred_at,
                raw_data=raw_data,
                model_version_fqn=settings.model_version_fqn,
                latency_ms=latency_ms,
                redact=settings.redact,
            )

        last_ids.set(tuple(data_id for data_id in ids if data_id is not None))

    def _data_id(self, row: Any, occurred_at: datetime | None) -> str | None:
        """The row's data_id by the ``id=`` mode; None lets the recorder hash."""
        mode = self._settings.id
        if mode == "hash":
            return None
        if mode == "hash+time":
            return hashing.generate_hash_from_data(row, occurred_at)
        if mode == "random":
            return uuid.uuid4().hex

        try:
            data_id = mode(row)
        except Exception as exc:
            warn.warning(
                f"id:{self._name}",
                "capture of %s: id= callable raised %s; using the hash",
                self._name,
                type(exc).__name__,
            )
            return None
        if isinstance(data_id, str) and VALID_ID.fullmatch(data_id):
            return data_id

        warn.warning(
            f"id:{self._name}",
            "capture of %s: id= callable gave an invalid id; using the hash",
            self._name,
        )
        return None

    def _skip(self, exc: BaseException) -> None:
        """The boundary: log our own failure, never its record contents."""
        last_ids.set(())
        _count_dropped(self._settings.recorder or default_recorder(), "capture_failed")
        reason = str(exc)[:200] if isinstance(exc, MLFError) else "-"
        warn.warning(
            f"skip:{self._name}:{type(exc).__name__}",
            "capture of %s skipped: %s: %s",
            self._name,
            type(exc).__name__,
            reason,
        )


def default_recorder() -> Any:
    """The default recorder if one was built; never builds one."""
    from .. import recorder as recorder_module

    return recorder_module._default


def _count_dropped(recorder: Any, reason: str, n: int = 1) -> None:
    """Count what a call could not record, on recorders that count it."""
    count = getattr(recorder, "count_dropped", None)
    if count is None:
        return
    try:
        count(reason, n)
    except Exception:  # counting must never break the call
        log.debug("count_dropped failed", exc_info=True)
