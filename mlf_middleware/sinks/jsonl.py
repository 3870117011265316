"""JSONLSink: one JSON line per record, one file per process, size rotation."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .._files import open_private, private_dir
from ..exceptions import ConfigError
from ..records import Actual, Prediction, encode, from_wire

__all__ = ["JSONLSink"]


class JSONLSink:
    """Append records to ``<folder>/mlf-<host>-<pid>-<start>-<n>.jsonl``.

    Each process writes its own files, so processes never interleave lines.
    A file past ``max_bytes`` is closed and the next one started.
    """

    url_options = {"max_bytes": int}

    def __init__(
        self, path: str | os.PathLike[str], *, max_bytes: int = 64 * 1024 * 1024
    ) -> None:
        if max_bytes <= 0:
            raise ConfigError("jsonl sink: max_bytes must be positive")
        self.path = Path(path).expanduser().absolute()
        self.max_bytes = max_bytes
        self.name = f"jsonl:{self.path.name}"
        self.url = f"jsonl:///{self.path}"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._part = 0
        self._pid = os.getpid()
        self._stem = ""

    def _open_next(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self._pid != os.getpid() or not self._stem:
            self._pid = os.getpid()
            host = socket.gethostname().replace("-", "_") or "host"
            self._stem = f"mlf-{host}-{self._pid}-{time.time_ns() // 1000}"
            self._part = 0
        private_dir(self.path)
        self._part += 1
        file = self.path / f"{self._stem}-{self._part}.jsonl"
        self._fd = open_private(file)
        self._size = os.fstat(self._fd).st_size

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self.write_wire([encode(r) for r in records])

    def write_wire(self, lines: Sequence[bytes]) -> None:
        data = b"\n".join(lines) + b"\n"
        with self._lock:
            if self._pid != os.getpid():
                self._fd = None  # the parent's file stays the parent's
            if self._fd is None or self._size + len(data) > self.max_bytes:
                if self._fd is None or self._size:
                    self._open_next()
            written = os.write(self._fd, data)  # type: ignore[arg-type]
            while written < len(data):
                written += os.write(self._fd, data[written:])  # type: ignore[arg-type]
            self._size += len(data)

    def files(self) -> list[Path]:
        """The JSON Lines files in the folder, oldest first."""
        return sorted(self.path.glob("mlf-*.jsonl"), key=lambda p: p.stat().st_mtime)

    def read_records(self) -> list[Prediction | Actual]:
        """Every record in the folder's files."""
        out: list[Prediction | Actual] = []
        for file in sorted(self.path.glob("mlf-*.jsonl")):
            for line in file.read_bytes().splitlines():
                if line.strip():
                    out.append(from_wire(orjson.loads(line)))
        return out

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._fd = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], max_bytes=state["max_bytes"])  # type: ignore[misc]
