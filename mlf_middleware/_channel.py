"""One sink's delivery line: bounded queue, worker thread, batches, retries,
spool and dead letters.

The caller's side (``offer``) holds a lock for a few list operations, or for
one append to a spool file when the queue is full or the sink is down; it
never waits on the sink. Everything slow happens on the worker thread, which
starts lazily and starts afresh in a forked child.

Order: records leave in the order they were accepted. While the spool holds
records, new ones go behind them on disk; the worker empties the in-memory
queue first (it is older) and then the spool. A batch whose write failed,
and the queue behind it, are older than what callers spilled meanwhile, so
they go ahead of it in the spool (``Spool.prepend``).

Accounting, always true under the lock:
    accepted == written + rejected + dropped + queue_size + spooled
where queue_size counts the queued records and the batch being written, and
spooled the records now on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from ._files import open_private
from ._logging import RateLimitedLog
from .exceptions import SinkRejected, SinkUnavailable
from .records import from_wire
from .spool import Spool

__all__ = ["OVERFLOW_POLICIES", "Channel"]

log = logging.getLogger(__name__)

OVERFLOW_POLICIES = ("spill", "drop_newest", "drop_oldest", "block")

# Backoff between attempts at a failing sink: full jitter over an exponential
# window, capped so a sink that comes back is found again soon.
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 5.0
_RETRY_AFTER_CAP = 60.0
_JOIN_GRACE = 0.05

# Python's own cost of one queued record (bytes object, tuple, int, deque
# slot), counted against the byte bound so that it bounds real memory.
_ITEM_OVERHEAD = 120

_live: weakref.WeakSet[Channel] = weakref.WeakSet()


warn = RateLimitedLog(log)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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
        block_timeout: float,
        spool_dir: Path | None,
        max_spool_bytes: int,
    ) -> None:
        self.sink = sink
        self.name = name
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._max_records = max_queue_records
        self._max_bytes = max_queue_bytes
        self._overflow = overflow
        self._block_timeout = block_timeout
        self._spool_dir = spool_dir
        self._max_spool_bytes = max_spool_bytes
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
        # Records are numbered in the order accepted: _seq is the last
        # number given, _head the number of the first queued record, and
        # _inflight_first that of the first record in the batch being written.
        self._queue: deque[bytes] = deque()
        self._queue_bytes = 0
        self._inflight: list[bytes] = []
        self._inflight_first = 0
        self._seq = 0
        self._head = 1
        # What the worker waits for: any record (idle), or a full batch.
        self._idle = False
        self._filling = False
        self._flush_wanted = 0
        self._closing = False
        self._closed = False
        self._abandon = False
        self._thread: threading.Thread | None = None
        self.accepted = 0
        self.written = 0
        self.rejected = 0
        self.dropped: Counter[str] = Counter()
        self.failed_writes = 0
        self.retries = 0
        self.spooled = 0
        self.spool = self._open_spool()

    def _open_spool(self) -> Spool | None:
        if self._spool_dir is None:
            return None
        try:
            spool = Spool(self._spool_dir, max_bytes=self._max_spool_bytes)
        except OSError as exc:
            log.warning(
                "sink %s: no spool at %s (%s); records that cannot be queued "
                "will be dropped",
                self.name,
                self._spool_dir,
                type(exc).__name__,
            )
            return None
        # Records a dead process left count as accepted here, so that the
        # accounting holds when they are written.
        self.accepted += len(spool)
        self.spooled += len(spool)
        dropped = spool.corrupt
        if dropped:
            self.accepted += dropped
            self.dropped["corrupt"] += dropped
        return spool

    # -- the caller's side ---------------------------------------------------

    def offer(self, item: bytes) -> bool:
        """Queue one encoded record; never waits on the sink, never raises."""
        with self._lock:
            if self._closing:
                self.accepted += 1
                self._drop_locked("closed")
                return False
            if self.spooled or self._full_locked(len(item)):
                kept = self._overflow_locked(item)
            else:
                self.accepted += 1
                self._append_locked(item)
                kept = True
        if self._thread is None:
            self._start()

        return kept

    def offer_many(self, items: Sequence[bytes]) -> None:
        """Queue a batch of encoded records under one hold of the lock."""
        if not items:
            return
        with self._lock:
            for item in items:
                if self._closing:
                    self.accepted += 1
                    self._drop_locked("closed")
                elif self.spooled or self._full_locked(len(item)):
                    self._overflow_locked(item)
                else:
                    self.accepted += 1
                    self._append_locked(item)
        if self._thread is None:
            self._start()

    def _append_locked(self, item: bytes) -> None:
        self._seq += 1
        self._queue.append(item)
        self._queue_bytes += len(item) + _ITEM_OVERHEAD
        if self._idle or (self._filling and len(self._queue) >= self._batch_size):
            self._idle = self._filling = False
            self._wake.notify()

    def _full_locked(self, size: int) -> bool:
        return (
            len(self._queue) >= self._max_records
            or self._queue_bytes + size + _ITEM_OVERHEAD > self._max_bytes
        )

    def _overflow_locked(self, item: bytes) -> bool:
        """Apply the overflow policy to a record that does not go in the queue.

        The record counts as accepted once its fate is decided: a caller
        waiting under ``block`` holds a record that is in no figure yet.
        """
        policy = self._overflow
        if self.spooled:
            policy = "spill"  # keep the order: behind what is already on disk
        elif policy == "block" and not _on_event_loop():
            deadline = time.monotonic() + self._block_timeout
            while self._full_locked(len(item)) and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._settled.wait(remaining)
            if not self._full_locked(len(item)) and not self._closing:
                self.accepted += 1
                self._append_locked(item)
                return True
        self.accepted += 1
        if policy in ("spill", "block"):
            return self._spill_locked([item]) == 1
        if policy == "drop_oldest" and self._queue:
            old = self._queue.popleft()
            self._head += 1
            self._queue_bytes -= len(old) + _ITEM_OVERHEAD
            self._drop_locked("queue_full")
            self._append_locked(item)
            return True

        self._drop_locked("queue_full")
        return False

    def _spill_locked(self, items: Sequence[bytes]) -> int:
        """Append records to the spool in order; drop what does not fit."""
        if not items:
            return 0
        stored = 0
        if self.spool is not None:
            try:
                stored = self.spool.append(items)
            except OSError as exc:
                warn.warning(
                    f"spool:{self.name}",
                    "sink %s: spool write failed (%s)",
                    self.name,
                    type(exc).__name__,
                )
        self.spooled += stored
        lost = len(items) - stored
        if lost:
            reason = "spool_full" if self.spool is not None else "queue_full"
            self.dropped[reason] += lost - 1
            self._drop_locked(reason)
        return stored

    def _drop_locked(self, reason: str) -> None:
        self.dropped[reason] += 1
        warn.warning(
            f"drop:{self.name}:{reason}",
            "sink %s: records dropped (%s); see stats()",
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

    def ensure_started(self) -> None:
        """Start the worker now if the spool already holds records."""
        if self.spooled and self._thread is None:
            self._start()

    # -- flush and close -----------------------------------------------------

    def _pending_locked(self, target: int) -> bool:
        if self.spooled:
            return True
        if self._inflight:
            return self._inflight_first <= target
        return bool(self._queue) and self._head <= target

    def flush(self, deadline: float) -> bool:
        """Wait until what was accepted before the call is settled, or deadline."""
        with self._lock:
            target = self._seq
            self._flush_wanted = max(self._flush_wanted, target)
            self._wake.notify()
            while self._pending_locked(target):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._settled.wait(remaining)
        return True

    def close(self, deadline: float) -> None:
        """Stop taking records, deliver what the deadline allows, spool the rest."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
            self._settled.notify_all()  # wake callers blocked by "block"
        self.flush(deadline)

        with self._lock:
            self._closed = True
            self._abandon = True
            self._stop.set()
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            # A worker waiting out a backoff wakes at once; one stuck inside
            # the sink's write is left behind when the deadline has passed.
            thread.join(max(_JOIN_GRACE, deadline - time.monotonic()))
        stuck = thread is not None and thread.is_alive()

        with self._lock:
            left = list(self._queue)
            self._queue.clear()
            self._head = self._seq + 1
            self._queue_bytes = 0
            self._settle_unsent_locked(left)
            if self.spooled:
                warn.warning(
                    f"close:{self.name}",
                    "sink %s: closed with %d records in the spool at %s",
                    self.name,
                    self.spooled,
                    self._spool_dir,
                )
        self._close_resources(deadline, stuck=stuck)

    def _settle_unsent_locked(self, items: Sequence[bytes]) -> None:
        """Records the worker will not deliver now: spool them, or drop them.

        They are older than anything callers spilled meanwhile, so they go
        ahead of it in the spool.
        """
        if not items:
            return
        if self.spool is None:
            self.dropped["close_timeout"] += len(items)
            return
        if not self.spooled:
            self._spill_locked(items)
            return
        try:
            stored = self.spool.prepend(items)
        except OSError:
            stored = 0
        self.spooled += stored
        if stored < len(items):
            self.dropped["spool_full"] += len(items) - stored - 1
            self._drop_locked("spool_full")

    def _close_resources(self, deadline: float, *, stuck: bool) -> None:
        if self.spool is not None:
            self.spool.close()
        if not stuck:
            self._close_sink()
            return
        # The worker is still inside a write, and the sink's close may wait
        # for it: close on the side, so that close() keeps its deadline.
        closer = threading.Thread(
            target=self._close_sink, name=f"mlf-close-{self.name}", daemon=True
        )
        closer.start()
        closer.join(max(0.0, deadline - time.monotonic()))

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception:
            log.exception("sink %s: close failed", self.name)

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue, threads, spool files and counters."""
        if self.spool is not None:
            self.spool.after_fork_in_child()
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
            if batch:
                self._deliver_queued(batch)
            else:
                self._deliver_spooled()
            with self._lock:
                self._settled.notify_all()

    def _next_batch(self) -> list[bytes] | None:
        """The next queued batch; [] means "serve the spool"; None means stop."""
        with self._lock:
            while not self._queue and not self.spooled:
                if self._stop.is_set():
                    return None
                self._idle = True
                self._wake.wait()
                self._idle = False
            if self._abandon:
                return None
            if not self._queue:
                return []
            if not self._batch_ready_locked():
                self._filling = True
                self._wake.wait(self._max_delay)
                self._filling = False
                if self._abandon or not self._queue:
                    return None if self._abandon else []

            take = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(take)]
            self._inflight_first = self._head
            self._head += take
            self._queue_bytes -= sum(map(len, batch)) + _ITEM_OVERHEAD * take
            self._inflight = batch
            return batch

    def _batch_ready_locked(self) -> bool:
        return (
            len(self._queue) >= self._batch_size
            or self._flush_wanted >= self._head
            or self._closing
            or self.spooled > 0
        )

    def _deliver_queued(self, items: list[bytes]) -> None:
        """Write a queued batch; on failure, spool the rest (or keep retrying)."""
        done = self._deliver(items, retry=self.spool is None, source="queue")
        if done == len(items):
            return

        with self._lock:
            # Spool the unsent tail, then everything queued after it, so
            # that the order holds once the sink is back.
            rest = items[done:] + list(self._queue)
            self._queue.clear()
            self._head = self._seq + 1
            self._queue_bytes = 0
            self._inflight = []
            self._settle_unsent_locked(rest)

    def _deliver_spooled(self) -> None:
        spool = self.spool
        if spool is None:
            return
        items = spool.peek(self._batch_size)
        if not items:
            # Counted but unreadable (should not happen): wait rather than
            # spin, and let flush and close deadlines decide.
            self._stop.wait(self._max_delay)
            return
        done = self._deliver(items, retry=True, source="spool")
        spool.consume(done)

    def _deliver(self, items: list[bytes], *, retry: bool, source: str) -> int:
        """Write ``items``; return how many from the front were settled.

        A rejected batch is split until the records at fault stand alone.
        Transient failures are retried with backoff when ``retry`` is true;
        otherwise, and when the channel is abandoned, delivery stops there.
        """
        attempt = 0
        while True:
            try:
                self._write(items)
            except SinkRejected:
                return self._isolate(items, retry=retry, source=source)
            except Exception as exc:
                self._count_failure(exc)
                if not retry or not self._backoff(exc, attempt):
                    return 0
                attempt += 1
                continue
            self._settle(len(items), "written", source)
            return len(items)

    def _isolate(self, items: list[bytes], *, retry: bool, source: str) -> int:
        if len(items) == 1:
            self._dead_letter(items)
            self._settle(1, "rejected", source)
            return 1

        half = len(items) // 2
        done = self._deliver(items[:half], retry=retry, source=source)
        if done < half:
            return done
        return half + self._deliver(items[half:], retry=retry, source=source)

    def _write(self, items: Sequence[bytes]) -> None:
        if self._write_wire is not None:
            self._write_wire(items)
            return
        self.sink.write([from_wire(orjson.loads(item)) for item in items])

    def _count_failure(self, exc: Exception) -> None:
        with self._lock:
            self.failed_writes += 1
        expected = isinstance(exc, SinkUnavailable | OSError | TimeoutError)
        warn.warning(
            f"fail:{self.name}",
            "sink %s: write failed (%s); records wait in the spool (or the "
            "queue) and will be retried",
            self.name,
            type(exc).__name__,
        )
        if not expected and warn.allows(f"trace:{self.name}"):
            # An exception no sink should raise: a bug worth a traceback.
            log.error(
                "sink %s: unexpected error from write()",
                self.name,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    def _backoff(self, exc: Exception, attempt: int) -> bool:
        """Wait before the next attempt; False when the channel is abandoned."""
        delay = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_FIRST * 2**attempt))
        if isinstance(exc, SinkUnavailable) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, _RETRY_AFTER_CAP))
        self._stop.wait(delay)
        if self._abandon:
            return False

        with self._lock:
            self.retries += 1
        return True

    def _settle(self, n: int, outcome: str, source: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + n)
            if source == "spool":
                self.spooled -= n
            else:
                self._inflight = self._inflight[n:]
                self._inflight_first += n
            self._settled.notify_all()

    def _dead_letter(self, items: Sequence[bytes]) -> None:
        """Keep rejected records beside the spool, for a person to look at."""
        warn.warning(
            f"reject:{self.name}",
            "sink %s: record rejected as invalid; kept in the dead-letter file",
            self.name,
        )
        if self._spool_dir is None:
            return
        path = self._spool_dir / f"deadletter-{os.getpid()}.jsonl"
        try:
            fd = open_private(path)
            try:
                os.write(fd, b"\n".join(items) + b"\n")
            finally:
                os.close(fd)
        except OSError as exc:
            warn.warning(
                f"deadletter:{self.name}",
                "sink %s: dead-letter write failed (%s)",
                self.name,
                type(exc).__name__,
            )

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


# Sinks may need to put connections away around a fork (SQLite does); those
# that did it in ``before_fork`` are told when the parent carries on.
_forking: list[Any] = []


def _before_fork() -> None:
    for channel in list(_live):
        hook = getattr(channel.sink, "before_fork", None)
        if hook is None:
            continue
        try:
            hook()
        except Exception:
            log.exception("sink %s: before_fork failed", channel.name)
            continue
        _forking.append(channel.sink)


def _after_fork_in_parent() -> None:
    while _forking:
        sink = _forking.pop()
        try:
            sink.after_fork_in_parent()
        except Exception:
            log.exception("a sink's after_fork_in_parent failed")


def _after_fork_in_child() -> None:
    _forking.clear()
    for channel in list(_live):
        channel.after_fork_in_child()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
