"""JSONLSink: one JSON line per record, one file per process, rotated."""

from __future__ import annotations

import gzip as gzip_module
import os
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson

from .._files import open_private, private_dir
from ..exceptions import ConfigError
from ..records import Actual, Prediction, encode, from_wire

__all__ = ["JSONLSink"]

# Seconds for the age of a file; a name of its own so tests can move time.
_clock = time.monotonic

_PARTIAL = ".partial"


def _flag(text: str) -> bool:
    """Read a yes/no URL option; raise ValueError for anything else."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


class JSONLSink:
    """Append records to ``<folder>/mlf-<host>-<pid>-<start>-<n>.jsonl``.

    Each process writes files of its own, so processes sharing a folder
    never interleave lines. A file is finished, and the next one started,
    when it would pass ``max_bytes`` or at the first write after it is
    ``max_seconds`` old; ``close()`` finishes the current file. Every line is
    a record's wire form: strict JSON (RFC 8259), NaN written as "NaN".

    Args:
        path: the folder (created 0700; files are 0600).
        max_bytes: size of a file before rotation (default 64 MiB; bytes on
            disk, so compressed bytes with gzip).
        max_seconds: age of a file before rotation (default one hour; 0
            turns time rotation off).
        gzip: compress files. Each batch is one gzip member, so what is on
            disk always decompresses; the file is named ``.jsonl.gz.partial``
            while open and renamed to ``.jsonl.gz`` once finished, so that
            shippers can pick up only finished files.
        gzip_level: 1 (fastest, the default: about 7 times smaller than
            plain JSON) to 9 (smallest, several times slower).
    """

    url_options = {
        "max_bytes": int,
        "max_seconds": float,
        "gzip": _flag,
        "gzip_level": int,
    }

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_seconds: float = 3600.0,
        gzip: bool = False,
        gzip_level: int = 1,
    ) -> None:
        if max_bytes <= 0:
            raise ConfigError("jsonl sink: max_bytes must be positive")
        if max_seconds < 0:
            raise ConfigError("jsonl sink: max_seconds must not be negative")
        if gzip_level not in range(1, 10):
            raise ConfigError("jsonl sink: gzip_level must be 1 to 9")
        self.path = Path(path).expanduser().absolute()
        self.max_bytes = max_bytes
        self.max_seconds = float(max_seconds)
        self.gzip = bool(gzip)
        self.gzip_level = gzip_level
        self.name = f"jsonl:{self.path.name}"
        self.url = f"jsonl:///{self.path}"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._file: Path | None = None
        self._size = 0
        self._opened = 0.0
        self._part = 0
        self._pid = os.getpid()
        self._stem = ""

    # -- files -----------------------------------------------------------------

    def _due(self, incoming: int) -> bool:
        """True when the next bytes belong in a new file."""
        if not self._size:
            return False
        if self._size + incoming > self.max_bytes:
            return True
        age = _clock() - self._opened

        return bool(self.max_seconds) and age >= self.max_seconds

    def _open_next(self) -> int:
        if not self._stem:
            host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
            self._stem = f"mlf-{host}-{self._pid}-{time.time_ns() // 1000}"
            self._part = 0
        private_dir(self.path)
        self._part += 1
        suffix = ".jsonl.gz" + _PARTIAL if self.gzip else ".jsonl"
        self._file = self.path / f"{self._stem}-{self._part}{suffix}"
        self._fd = open_private(self._file)
        self._size = os.fstat(self._fd).st_size
        self._opened = _clock()

        return self._fd

    def _finish(self) -> None:
        """Close the current file; a gzip file takes its finished name."""
        fd, file = self._fd, self._file
        self._fd = self._file = None
        if fd is None:
            return
        os.close(fd)
        if file is not None and file.name.endswith(_PARTIAL):
            os.rename(file, file.with_name(file.name[: -len(_PARTIAL)]))

    def _forget_parent(self) -> None:
        """In a forked child: the parent's file stays the parent's."""
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)  # our copy of the descriptor only
        self._fd = self._file = None
        self._pid, self._stem = os.getpid(), ""

    # -- writing ---------------------------------------------------------------

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self.write_wire([encode(r) for r in records])

    def write_wire(self, lines: Sequence[bytes]) -> None:
        if not lines:
            return
        data = b"\n".join(lines) + b"\n"
        if self.gzip:
            data = gzip_module.compress(data, compresslevel=self.gzip_level, mtime=0)

        with self._lock:
            if self._pid != os.getpid():
                self._forget_parent()
            fd = self._fd
            if fd is None or self._due(len(data)):
                self._finish()
                fd = self._open_next()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._size += len(data)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._forget_parent()

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._finish()
            self._fd = self._file = None

    # -- reading ---------------------------------------------------------------

    def files(self) -> list[Path]:
        """The folder's JSON Lines files (finished or not), oldest first."""
        found = [
            p
            for pattern in ("mlf-*.jsonl", "mlf-*.jsonl.gz", "mlf-*.jsonl.gz.partial")
            for p in self.path.glob(pattern)
        ]
        # Within one stem a longer name has the larger part number.
        return sorted(found, key=lambda p: (p.stat().st_mtime_ns, len(p.name), p.name))

    def read_records(self) -> list[Prediction | Actual]:
        """Every record in the folder's files, each record_id once."""
        seen: set[str] = set()
        out: list[Prediction | Actual] = []
        for file in self.files():
            for line in _complete_lines(file):
                obj = orjson.loads(line)
                if obj["record_id"] not in seen:
                    seen.add(obj["record_id"])
                    out.append(from_wire(obj))
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "max_bytes": self.max_bytes,
            "max_seconds": self.max_seconds,
            "gzip": self.gzip,
            "gzip_level": self.gzip_level,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"],
            max_bytes=state["max_bytes"],
            max_seconds=state["max_seconds"],
            gzip=state["gzip"],
            gzip_level=state["gzip_level"],
        )

    def __repr__(self) -> str:
        return f"JSONLSink({str(self.path)!r})"


def _complete_lines(file: Path) -> Iterator[bytes]:
    """The file's whole lines; a line cut short by a crash is left out."""
    data = file.read_bytes()
    if file.name.endswith((".gz", ".gz" + _PARTIAL)):
        data = _gunzip(data)
    end = data.rfind(b"\n")
    for line in data[: end + 1].splitlines():
        if line.strip():
            yield line


def _gunzip(data: bytes) -> bytes:
    """Decompress every complete gzip member; stop at a torn last one."""
    out: list[bytes] = []
    while data:
        member = zlib.decompressobj(wbits=31)
        try:
            chunk = member.decompress(data)
        except zlib.error:
            break
        if not member.eof:
            break
        out.append(chunk)
        data = member.unused_data

    return b"".join(out)
