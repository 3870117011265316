"""The disk spool: a per-process, file-backed FIFO of encoded records.

Each process appends JSON lines to its own segment files in the sink's spool
folder and holds an exclusive ``flock`` on each of them while it lives. A new
spool for the same folder adopts the segments whose lock it can take: their
owner died (or closed without delivering them), so it delivers them first.
Lines are whole records (the encoder never writes a newline inside one); a
line torn by a crash is found when adopted, and counted, not delivered.

Delivery from the spool is at least once: a segment is deleted only after all
its records were written, so a crash in between sends some again. Stores
ignore a record_id they already hold, so they keep each record once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ._files import open_private, private_dir

__all__ = ["Spool", "default_spool_root"]

log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 * 1024 * 1024


def default_spool_root() -> Path:
    """``MLF_SPOOL_DIR``, else the user's cache folder."""
    from .config import env_str

    configured = env_str("MLF_SPOOL_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mlf-middleware" / "spool"


@dataclass
class _Segment:
    path: Path
    fd: int  # read-write descriptor holding the flock
    records: int = 0  # lines not yet consumed
    size: int = 0
    offset: int = 0  # read position of the next unconsumed line
    adopted: bool = False
    pending: deque[bytes] = field(default_factory=deque)


class Spool:
    """Append records, read them back in order, delete what was delivered."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.folder = private_dir(folder)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segments: deque[_Segment] = deque()
        self._serial = 0
        self._pid = os.getpid()
        self._closed = False
        self.corrupt = 0
        self.adopted = self._adopt()

    # -- adoption ----------------------------------------------------------

    def _adopt(self) -> int:
        """Take over segments left by processes that no longer hold them."""
        found = 0
        for path in sorted(self.folder.glob("seg-*.jsonl"), key=_age):
            try:
                fd = open_private(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # its owner is alive
                continue
            segment = self._load(path, fd)
            if segment.records:
                self._segments.append(segment)
                found += segment.records
            else:
                self._delete(segment)
        if found:
            log.warning("spool %s: adopted %d undelivered records", self.folder, found)
        return found

    def _load(self, path: Path, fd: int) -> _Segment:
        """Count an adopted segment's whole records, reading it in chunks.

        Nothing is kept in memory: records are read again when delivered.
        A line that is not JSON (torn by a crash) is counted as corrupt; so
        is an unfinished last line.
        """
        segment = _Segment(path, fd, adopted=True)
        offset = 0
        rest = b""
        while chunk := os.pread(fd, 1024 * 1024, offset):
            offset += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if _is_json(line):
                    segment.records += 1
                elif line:
                    self.corrupt += 1
        if rest:
            self.corrupt += 1
        segment.size = offset
        return segment

    # -- writing -----------------------------------------------------------

    def _tail(self, incoming: int) -> _Segment:
        tail = self._segments[-1] if self._segments else None
        if (
            tail is not None
            and not tail.adopted
            and tail.size + incoming <= self.segment_bytes
        ):
            return tail
        self._serial += 1
        name = f"seg-{os.getpid()}-{time.time_ns()}-{self._serial:06d}.jsonl"
        path = self.folder / name
        fd = open_private(path, os.O_RDWR | os.O_APPEND)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        segment = _Segment(path, fd)
        self._segments.append(segment)
        return segment

    def append(self, items: Sequence[bytes]) -> int:
        """Append records in order; return how many fit under the size cap."""
        with self._lock:
            if self._closed:
                return 0
            room = self.max_bytes - self._bytes_locked()
            fit = 0
            size = 0
            for item in items:
                if size + len(item) + 1 > room:
                    break
                size += len(item) + 1
                fit += 1
            if not fit:
                return 0
            data = b"\n".join(items[:fit]) + b"\n"
            segment = self._tail(len(data))
            try:
                _write_all(segment.fd, data)
            except OSError:
                # A disk that filled mid-write: cut the torn tail off, so
                # the next record does not join a half line.
                os.ftruncate(segment.fd, segment.size)
                raise
            segment.size += len(data)
            segment.records += fit

        return fit

    def prepend(self, items: Sequence[bytes]) -> int:
        """Put records ahead of everything spooled: they are older.

        A batch whose write failed (and the queue behind it) is older than
        what callers spilled while it was being written; a segment of its
        own at the head keeps the order. After a crash, segments are adopted
        by age, so that order may not survive a restart.
        """
        with self._lock:
            if self._closed or not items:
                return 0
            room = self.max_bytes - self._bytes_locked()
            size = sum(len(item) + 1 for item in items)
            if size > room:
                return 0
            self._serial += 1
            name = f"seg-{os.getpid()}-{time.time_ns()}-{self._serial:06d}.jsonl"
            path = self.folder / name
            fd = open_private(path, os.O_RDWR | os.O_APPEND)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data = b"\n".join(items) + b"\n"
            try:
                _write_all(fd, data)
            except OSError:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
            # A closed segment at the head: appends go to the tail as ever.
            segment = _Segment(path, fd, records=len(items), size=len(data))
            segment.adopted = True  # deleted once consumed, never appended to
            segment.pending.extend(items)
            self._segments.appendleft(segment)
        return len(items)

    # -- reading -----------------------------------------------------------

    def peek(self, n: int) -> list[bytes]:
        """Return up to ``n`` records from the head, without consuming them."""
        with self._lock:
            if self._closed or not self._segments:
                return []
            head = self._segments[0]
            while len(head.pending) < min(n, head.records):
                if not self._read_more(head):
                    break
            return list(head.pending)[:n]

    def _read_more(self, segment: _Segment) -> bool:
        """Read whole lines past the offset; a record may exceed one chunk."""
        chunk = os.pread(segment.fd, 1024 * 1024, segment.offset)
        cut = chunk.rfind(b"\n")
        while cut < 0:
            more = os.pread(segment.fd, 1024 * 1024, segment.offset + len(chunk))
            if not more:
                return False
            chunk += more
            cut = chunk.rfind(b"\n")
        segment.offset += cut + 1
        lines = chunk[:cut].split(b"\n")
        if segment.adopted:  # torn lines were counted as corrupt when adopted
            lines = [line for line in lines if _is_json(line)]
        segment.pending.extend(lines)
        return True

    def consume(self, n: int) -> None:
        """Forget the ``n`` head records: they were delivered or settled."""
        with self._lock:
            if self._closed or n <= 0:
                return  # after close, the files keep what was not consumed
            head = self._segments[0]
            for _ in range(n):
                head.pending.popleft()
            head.records -= n
            if head.records == 0 and (
                head.adopted
                or len(self._segments) > 1
                or head.size >= self.segment_bytes
            ):
                self._segments.popleft()
                self._delete(head)
            elif head.records == 0:
                # The live tail segment: empty it in place and keep writing.
                os.ftruncate(head.fd, 0)
                head.size = head.offset = 0

    # -- figures and lifecycle ---------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return sum(s.records for s in self._segments)

    def _bytes_locked(self) -> int:
        return sum(s.size for s in self._segments)

    def _delete(self, segment: _Segment) -> None:
        try:
            segment.path.unlink(missing_ok=True)
        finally:
            os.close(segment.fd)

    def close(self) -> None:
        """Release the files; undelivered records stay for a later spool."""
        with self._lock:
            self._closed = True
            while self._segments:
                segment = self._segments.popleft()
                if segment.records == 0:
                    self._delete(segment)
                else:
                    os.close(segment.fd)

    def after_fork_in_child(self) -> None:
        """Drop the parent's descriptors; its locks stay with the parent."""
        for segment in self._segments:
            with contextlib.suppress(OSError):
                os.close(segment.fd)
        self._lock = threading.Lock()
        self._segments = deque()
        self._pid = os.getpid()


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return bool(line)


def _age(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except OSError:
        return (0.0, path.name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
