"""One sink's delivery line: bounded queue, worker thread, batches, retries.

The caller's side (``offer``) only takes a lock for a few list operations and
never waits on the sink. Everything slow happens on the worker thread, which
the channel starts lazily and starts afresh in a forked child.

Accounting, always true under the lock:
    accepted == written + rejected + dropped + queue_size + spooled
where queue_size counts the queued records and the batch being written.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .exceptions import SinkRejected, SinkUnavailable
from .records import from_wire

__all__ = ["Channel", "RateLimitedLog"]

log = logging.getLogger(__name__)

# Backoff between attempts at a failing sink: full jitter over an exponential
# window, capped so a sink that comes back is found again soon.
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 10.0

_live: weakref.WeakSet[Channel] = weakref.WeakSet()


class RateLimitedLog:
    """Log a WARNING at most once per ``interval`` seconds per key."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._interval:
            self._suppressed[key] += 1
            return

        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += " (%d similar messages suppressed)"
            args = (*args, skipped)
        self._logger.warning(msg, *args)


warn = RateLimitedLog(log)


class Channel:
    """Deliver encoded records to one sink in batches, off the caller's thread."""

    def __init__(
        self,
        sink: Any,
        *,
        name: str,
        batch_size: int,
        max_delay: float,
        max_queue_records: int,
        max_queue_bytes: int,
        overflow: str,
    ) -> None:
        self.sink = sink
        self.name = name
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._max_records = max_queue_records
        self._max_bytes = max_queue_bytes
        self._overflow = overflow
        self._write_wire: Callable[[Sequence[bytes]], None] | None = getattr(
            sink, "write_wire", None
        )
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        """Start from nothing: used at creation and in a forked child."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._settled = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queue_bytes = 0
        self._inflight: list[tuple[int, bytes]] = []
        self._seq = 0
        self._flush_wanted = 0
        self._closing = False
        self._closed = False
        self._abandon = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.accepted = 0
        self.written = 0
        self.rejected = 0
        self.dropped: Counter[str] = Counter()
        self.failed_writes = 0
        self.retries = 0
        self.spooled = 0

    # -- the caller's side ---------------------------------------------------

    def offer(self, item: bytes) -> bool:
        """Queue one encoded record; never blocks on the sink, never raises."""
        with self._lock:
            self.accepted += 1
            if self._closing:
                self._drop_locked("closed")
                return False
            if self._full_locked(len(item)):
                if self._overflow != "drop_oldest" or not self._queue:
                    self._drop_locked("queue_full")
                    return False
                _, old = self._queue.popleft()
                self._queue_bytes -= len(old)
                self.dropped["queue_full"] += 1

            self._seq += 1
            self._queue.append((self._seq, item))
            self._queue_bytes += len(item)
            if len(self._queue) >= self._batch_size:
                self._wake.notify()
        if self._thread is None:
            self._start()

        return True

    def _full_locked(self, size: int) -> bool:
        return (
            len(self._queue) >= self._max_records
            or self._queue_bytes + size > self._max_bytes
        )

    def _drop_locked(self, reason: str) -> None:
        self.dropped[reason] += 1
        warn.warning(
            f"drop:{self.name}:{reason}",
            "sink %s: record dropped (%s)",
            self.name,
            reason,
        )

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"mlf-{self.name}", daemon=True
            )
            self._thread.start()

    # -- flush and close -----------------------------------------------------

    def _oldest_pending_locked(self) -> int | None:
        if self._inflight:
            return self._inflight[0][0]
        if self._queue:
            return self._queue[0][0]
        return None

    def flush(self, deadline: float) -> bool:
        """Wait until what was queued before the call is settled, or deadline."""
        with self._lock:
            target = self._seq
            self._flush_wanted = max(self._flush_wanted, target)
            self._wake.notify()
            while True:
                oldest = self._oldest_pending_locked()
                if oldest is None or oldest > target:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._settled.wait(remaining)

    def close(self, deadline: float) -> None:
        """Stop taking records, deliver what the deadline allows, stop."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
        self.flush(deadline)

        with self._lock:
            self._closed = True
            self._abandon = True
            self._stop.set()
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))

        with self._lock:
            left = len(self._queue)
            if left:
                self.dropped["close_timeout"] += left
                self._queue.clear()
                self._queue_bytes = 0
                warn.warning(
                    f"close:{self.name}",
                    "sink %s: %d records not delivered before close deadline",
                    self.name,
                    left,
                )
        self._close_sink()

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception:
            log.exception("sink %s: close failed", self.name)

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue, threads and counters."""
        sink_reset = getattr(self.sink, "after_fork", None)
        self._reset()
        if sink_reset is not None:
            sink_reset()

    # -- the worker ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._deliver(batch)
            with self._lock:
                self._inflight = []
                self._settled.notify_all()

    def _next_batch(self) -> list[tuple[int, bytes]] | None:
        with self._lock:
            while not self._queue:
                if self._stop.is_set():
                    return None
                self._wake.wait()
            if not self._batch_ready_locked():
                self._wake.wait(self._max_delay)
            if self._abandon:
                return None

            take = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(take)]
            self._queue_bytes -= sum(len(item) for _, item in batch)
            self._inflight = batch

            return batch

    def _batch_ready_locked(self) -> bool:
        return (
            len(self._queue) >= self._batch_size
            or self._flush_wanted >= self._queue[0][0]
            or self._closing
        )

    def _deliver(self, batch: list[tuple[int, bytes]]) -> None:
        """Write one batch, retrying with backoff until it lands or we stop."""
        attempt = 0
        while True:
            try:
                self._write(batch)
            except SinkRejected:
                self._isolate(batch)
                return
            except Exception as exc:
                if not self._after_failure(exc, attempt):
                    self._settle(batch, "dropped", reason="close_timeout")
                    return
                attempt += 1
                continue
            self._settle(batch, "written")
            return

    def _write(self, batch: Sequence[tuple[int, bytes]]) -> None:
        if self._write_wire is not None:
            self._write_wire([item for _, item in batch])
            return
        self.sink.write([from_wire(orjson.loads(item)) for _, item in batch])

    def _after_failure(self, exc: Exception, attempt: int) -> bool:
        """Count a failed write and wait before the next; False to give up."""
        with self._lock:
            self.failed_writes += 1
        warn.warning(
            f"fail:{self.name}",
            "sink %s: write failed (%s); will retry",
            self.name,
            type(exc).__name__,
        )
        delay = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_FIRST * 2**attempt))
        if isinstance(exc, SinkUnavailable) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, _BACKOFF_CAP * 6))
        if self._stop.wait(delay) and self._abandon:
            return False

        with self._lock:
            self.retries += 1
        return True

    def _isolate(self, batch: list[tuple[int, bytes]]) -> None:
        """Split a rejected batch until the records at fault stand alone."""
        if len(batch) == 1:
            self._settle(batch, "rejected")
            warn.warning(
                f"reject:{self.name}",
                "sink %s: record rejected as invalid",
                self.name,
            )
            return

        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            self._deliver(part)

    def _settle(
        self, part: list[tuple[int, bytes]], outcome: str, *, reason: str = ""
    ) -> None:
        """Move ``part`` out of the in-flight batch into one outcome counter."""
        done = {seq for seq, _ in part}
        with self._lock:
            if outcome == "dropped":
                self.dropped[reason] += len(part)
            else:
                setattr(self, outcome, getattr(self, outcome) + len(part))
            self._inflight = [x for x in self._inflight if x[0] not in done]
            self._settled.notify_all()

    # -- figures -------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "accepted": self.accepted,
                "written": self.written,
                "rejected": self.rejected,
                "dropped": sum(self.dropped.values()),
                "dropped_by_reason": dict(self.dropped),
                "failed_writes": self.failed_writes,
                "retries": self.retries,
                "spooled": self.spooled,
                "queue_size": len(self._queue) + len(self._inflight),
            }


def _after_fork_in_child() -> None:
    for channel in list(_live):
        channel.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
