"""Helpers for testing code that uses mlf-middleware.

``memory_recorder()`` gives a recorder that keeps records in memory;
``FixedClock`` stamps every record with one instant, so records compare
exactly; ``flushed(recorder)`` returns what the sink holds after a flush.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from .exceptions import MLFError
from .recorder import Recorder
from .records import Actual, Prediction
from .sinks.memory import MemorySink

__all__ = ["FixedClock", "MemorySink", "flushed", "memory_recorder"]


class FixedClock:
    """A clock for ``Recorder(clock=...)`` that returns a set instant.

    ``advance(seconds)`` moves it forward; ``step`` moves it on every call.
    """

    def __init__(
        self,
        start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
        *,
        step: float = 0.0,
    ) -> None:
        self.now = start if start.tzinfo else start.replace(tzinfo=UTC)
        self.step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.step
        return now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@contextmanager
def memory_recorder(**options: Any) -> Iterator[Recorder]:
    """Yield a Recorder writing to a MemorySink (``recorder.sinks[0]``).

    Options are the Recorder's; the recorder is closed on exit.
    """
    recorder = Recorder(MemorySink(), **options)
    try:
        yield recorder
    finally:
        recorder.close(timeout=5)


def flushed(recorder: Recorder, timeout: float = 5.0) -> list[Prediction | Actual]:
    """Flush ``recorder`` and return its first sink's records, in order.

    Raises MLFError if the flush did not finish within ``timeout``.
    """
    if not recorder.flush(timeout):
        raise MLFError(f"recorder did not flush within {timeout} s")
    sink = recorder.sinks[0]
    if isinstance(sink, MemorySink):
        return list(sink.records)

    return sink.read_records()
