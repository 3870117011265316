"""ServeRecorder: a recorder that travels to replicas as its configuration."""

from __future__ import annotations

import contextlib
import inspect
import threading
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mlf_middleware.config import check_recorder_options
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.recorder import Recorder, get_recorder
from mlf_middleware.sinks import resolve_url

from ._context import stamp

__all__ = ["ServeRecorder", "flush_all"]

# Every ServeRecorder that has handed out a recorder in this process, so a
# replica's shutdown hook can flush them all.
_in_use: weakref.WeakSet[ServeRecorder] = weakref.WeakSet()


class ServeRecorder:
    """Record from Ray Serve replicas; carried as configuration, built there.

    Pass it to ``capture_deployment(recorder=...)`` or to
    ``PredictionLoggingMiddleware(recorder=...)`` on a ``serve.ingress`` app.
    It pickles as its sink URLs and options only: each process that uses it
    (each replica) builds its own ``Recorder`` on first use, and nothing
    queued or running ever crosses a process boundary. Inside a replica it
    adds to each record's ``raw_data``: ``framework`` ("ray_serve"),
    ``application``, ``deployment``, ``replica_id`` and ``request_id``.

    Args:
        sink: a sink URL or a list of them; relative file paths are made
            absolute here, so replicas write where the driver meant. None
            means each process's default recorder (``configure()``, else
            ``MLF_SINK``, else ``sqlite:///mlf_predictions.db`` in the
            replica's working folder).
        **options: the ``Recorder`` options (``batch_size``, ``spool_dir``,
            ...), checked now; they need a ``sink``.

    Raises:
        ConfigError: a sink URL or an option is bad (named in the message).
    """

    def __init__(self, sink: str | Sequence[str] | None = None, **options: Any) -> None:
        self._sink = _check_sink(sink)
        if self._sink is None and options:
            raise ConfigError(
                "ServeRecorder options need sink=: without it each replica "
                "uses its default recorder"
            )
        self._options = _checked_options(self._sink, options)
        self._lock = threading.Lock()
        self._built: Recorder | None = None
        self._used = False
        self._closed = False

    @classmethod
    def wrapping(cls, recorder: Recorder) -> ServeRecorder:
        """Stamp Serve metadata on the records of an existing ``recorder``.

        The recorder itself crosses to replicas (it pickles as its
        configuration and starts afresh there).
        """
        serve_recorder = cls()
        serve_recorder._built = recorder
        return serve_recorder

    def __reduce__(self) -> tuple[Any, ...]:
        if self._sink is None and self._built is not None:
            return (_wrapping, (self._built,))
        return (_rebuild, (self._sink, self._options))

    def __repr__(self) -> str:
        where = "default recorder" if self._sink is None else self._sink
        return f"<ServeRecorder {where!r} built={self._built is not None}>"

    @property
    def recorder(self) -> Recorder:
        """This process's recorder, built on first use."""
        if not self._used:
            self._used = True
            _in_use.add(self)
        built = self._built
        if built is not None:
            return built
        if self._sink is None:
            return get_recorder()  # looked up each time: configure() may change it

        with self._lock:
            if self._built is None:
                self._built = Recorder(self._sink, **self._options)
            return self._built

    @property
    def enabled(self) -> bool:
        """False after close() or when the recorder records nothing."""
        return not self._closed and self.recorder.enabled

    @property
    def model_version_fqn(self) -> str | None:
        return self.recorder.model_version_fqn

    def count_dropped(self, reason: str, n: int = 1) -> None:
        """Count records the capture could not make (see Recorder)."""
        self.recorder.count_dropped(reason, n)

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
        """Record one prediction row with the replica's metadata; never raises."""
        if self._closed:
            return None
        with contextlib.suppress(Exception):  # never lose a record for metadata
            raw_data = stamp(raw_data, features)

        return self.recorder.record(
            features,
            prediction_data,
            data_id=data_id,
            occurred_at=occurred_at,
            raw_data=raw_data,
            model_version_fqn=model_version_fqn,
            latency_ms=latency_ms,
            actual_value=actual_value,
            redact=redact,
        )

    def record_actual(
        self,
        data_id: str,
        value: Any,
        *,
        occurred_at: datetime | None = None,
        model_version_fqn: str | None = None,
    ) -> bool:
        """Record the true outcome for ``data_id``; never raises."""
        if self._closed:
            return False
        return self.recorder.record_actual(
            data_id,
            value,
            occurred_at=occurred_at,
            model_version_fqn=model_version_fqn,
        )

    def log_actual(self, data_id: str, value: Any) -> bool:
        """Record one actual for ``data_id``."""
        if self._closed:
            return False
        return self.recorder.record_actual(data_id, value)

    def flush(self, timeout: float | None = None) -> bool:
        """Flush this process's recorder, if it was used; see Recorder.flush."""
        if not self._used:
            return True

        return self.recorder.flush(timeout)

    def close(self, timeout: float | None = None) -> dict[str, Any]:
        """Close the recorder this process built (never the default one).

        Idempotent; afterwards ``enabled`` is False and nothing is recorded.
        """
        self._closed = True
        built = self._built
        if built is None or self._sink is None:
            return {} if built is None else built.stats()

        return built.close(timeout)

    def stats(self) -> dict[str, Any]:
        """The recorder's delivery figures (see Recorder.stats)."""
        return self.recorder.stats()


def flush_all(timeout: float | None = None) -> bool:
    """Flush every ServeRecorder used in this process; True if all are done."""
    done = True
    for serve_recorder in list(_in_use):
        done = serve_recorder.flush(timeout) and done

    return done


def _rebuild(sink: list[str] | None, options: dict[str, Any]) -> ServeRecorder:
    return ServeRecorder(sink, **options)


def _wrapping(recorder: Recorder) -> ServeRecorder:
    return ServeRecorder.wrapping(recorder)


def _check_sink(sink: Any) -> list[str] | None:
    """Sink URLs made absolute; sink objects cannot cross to replicas."""
    if sink is None:
        return None

    urls = list(sink) if isinstance(sink, list | tuple) else [sink]
    checked = []
    for url in urls:
        if not isinstance(url, str):
            raise ConfigError(
                "sink: pass URLs (sqlite:///..., postgresql://...); a sink "
                f"object ({type(url).__name__}) cannot travel to replicas"
            )
        checked.append(resolve_url(url))
    if not checked:
        raise ConfigError("sink: no sink given")

    return checked


_RECORDER_SIGNATURE = inspect.signature(Recorder)


def _checked_options(sink: list[str] | None, options: dict[str, Any]) -> dict[str, Any]:
    """Check options as Recorder would, without building one here."""
    try:
        bound = _RECORDER_SIGNATURE.bind(sink, **options)
    except TypeError as exc:
        raise ConfigError(f"ServeRecorder: {exc}") from None

    bound.apply_defaults()
    check_recorder_options(dict(bound.arguments))

    return dict(options)
