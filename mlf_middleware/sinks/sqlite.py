"""SQLiteSink: the embedded default store, one file, several processes."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .. import hashing
from .._files import open_private, private_dir, refuse_symlink
from ..exceptions import ConfigError, SinkUnavailable
from ..records import Actual, Prediction, encode, utc
from ._rows import (
    actual_of,
    actual_values,
    joined_row,
    prediction_of,
    prediction_values,
)

__all__ = ["SQLiteSink"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mlf_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    record_id TEXT PRIMARY KEY,
    data_id TEXT NOT NULL,
    model_version_fqn TEXT,
    occurred_at TEXT NOT NULL,
    features TEXT NOT NULL,
    prediction_data TEXT NOT NULL,
    raw_data TEXT,
    latency_ms REAL,
    actual_value TEXT
);
CREATE INDEX IF NOT EXISTS predictions_data_id ON predictions (data_id);
CREATE INDEX IF NOT EXISTS predictions_occurred_at ON predictions (occurred_at);
CREATE TABLE IF NOT EXISTS actuals (
    record_id TEXT PRIMARY KEY,
    data_id TEXT NOT NULL,
    model_version_fqn TEXT,
    occurred_at TEXT NOT NULL,
    value TEXT
);
CREATE INDEX IF NOT EXISTS actuals_data_id ON actuals (data_id, occurred_at);
"""

# Rows already stored (same record_id) are ignored: a retried batch is harmless.
_INSERT_PREDICTION = """
INSERT OR IGNORE INTO predictions (record_id, data_id, model_version_fqn,
    occurred_at, features, prediction_data, raw_data, latency_ms, actual_value)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_ACTUAL = """
INSERT OR IGNORE INTO actuals (record_id, data_id, model_version_fqn,
    occurred_at, value)
VALUES (?, ?, ?, ?, ?)
"""

# Each prediction with the latest actual for its data_id; models must match
# when both records name one.
_JOINED = """
SELECT p.record_id, p.data_id, p.model_version_fqn, p.occurred_at,
       p.features, p.prediction_data, p.raw_data, p.latency_ms,
       a.record_id, a.value, a.occurred_at
FROM predictions AS p
LEFT JOIN actuals AS a ON a.record_id = (
    SELECT a2.record_id FROM actuals AS a2
    WHERE a2.data_id = p.data_id
      AND (a2.model_version_fqn IS NULL OR p.model_version_fqn IS NULL
           OR a2.model_version_fqn = p.model_version_fqn)
    ORDER BY a2.occurred_at DESC, a2.rowid DESC
    LIMIT 1
)
WHERE (:model IS NULL OR p.model_version_fqn = :model)
  AND (:start IS NULL OR p.occurred_at >= :start)
  AND (:end IS NULL OR p.occurred_at < :end)
ORDER BY p.occurred_at, p.rowid
"""


def _bound(value: datetime | None) -> str | None:
    return None if value is None else hashing.format_timestamp(utc(value))


class SQLiteSink:
    """Write records to a SQLite file in WAL mode.

    Predictions and actuals live in two tables that join on ``data_id``;
    ``joined()`` reads them back together. Several processes may write one
    file: each holds its own connection and waits up to ``timeout`` seconds
    for the write lock.
    """

    url_options = {"timeout": float}

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = Path(path).expanduser().absolute()
        if timeout <= 0:
            raise ConfigError("sqlite sink: timeout must be positive")
        self.timeout = timeout
        self.name = f"sqlite:{self.path.name}"
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        _check_path(self.path)

    # -- connection --------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        for suffix in ("", "-wal", "-shm"):
            refuse_symlink(Path(f"{self.path}{suffix}"))
        private_dir(self.path.parent)
        # Create the file owner-only first: SQLite gives -wal and -shm the
        # main file's mode.
        os.close(open_private(self.path, os.O_RDWR))

        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            check_same_thread=False,
            isolation_level=None,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = _stored_version(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path} was written by a newer mlf-middleware (schema "
                f"{version}, this one knows {SCHEMA_VERSION}): upgrade "
                "mlf-middleware or point the sink at another file"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO mlf_meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # A forked child must not touch the parent's connection.
            self._conn, self._pid = None, os.getpid()
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    # SQLite keeps per-process lock bookkeeping for every open file, which a
    # forked child inherits: a child that opens the file while the parent
    # had it open can wait forever on a lock that only the parent's
    # bookkeeping remembers. So the parent closes its connection around a
    # fork (waiting for a write in progress) and reopens it on next use.

    def before_fork(self) -> None:
        self._lock.acquire()
        try:
            if self._conn is not None:
                self._conn.close()
        except BaseException:
            self._lock.release()  # the parent is told only on success
            raise
        finally:
            self._conn = None

    def after_fork_in_parent(self) -> None:
        self._lock.release()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._conn, self._pid = None, os.getpid()

    # -- writing -------------------------------------------------------------

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self.write_wire([encode(r) for r in records])

    def write_wire(self, lines: Sequence[bytes]) -> None:
        predictions, actuals = [], []
        for line in lines:
            obj = orjson.loads(line)
            if obj["type"] == "prediction":
                predictions.append(prediction_values(obj))
            else:
                actuals.append(actual_values(obj))

        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                if predictions:
                    conn.executemany(_INSERT_PREDICTION, predictions)
                if actuals:
                    conn.executemany(_INSERT_ACTUAL, actuals)
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise SinkUnavailable(f"sqlite: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- reading ---------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise ConfigError(f"no store at {self.path}")
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def joined(
        self,
        model_version_fqn: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Every prediction in [start, end) with its latest actual, or None."""
        params = {
            "model": model_version_fqn,
            "start": _bound(start),
            "end": _bound(end),
        }
        conn = self._reader()
        try:
            rows = conn.execute(_JOINED, params).fetchall()
        finally:
            conn.close()

        return [joined_row(row, datetime.fromisoformat) for row in rows]

    def read_records(self) -> list[Prediction | Actual]:
        """Every stored record, predictions first, each in insertion order."""
        conn = self._reader()
        try:
            preds = conn.execute(
                "SELECT record_id, data_id, model_version_fqn, occurred_at, "
                "features, prediction_data, raw_data, latency_ms, actual_value "
                "FROM predictions ORDER BY rowid"
            ).fetchall()
            acts = conn.execute(
                "SELECT record_id, data_id, model_version_fqn, occurred_at, "
                "value FROM actuals ORDER BY rowid"
            ).fetchall()
        finally:
            conn.close()

        out: list[Prediction | Actual] = [
            prediction_of(r, datetime.fromisoformat) for r in preds
        ]
        out.extend(actual_of(r, datetime.fromisoformat) for r in acts)
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], timeout=state["timeout"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"SQLiteSink({str(self.path)!r})"


def _check_path(path: Path) -> None:
    """Refuse, when the sink is made, a path no write could ever use."""
    refuse_symlink(path)
    if path.is_dir():
        raise ConfigError(f"sqlite sink: {path} is a folder, not a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"sqlite sink: {parent} is not a folder")
            break
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise ConfigError(f"sqlite sink: {path} is not a SQLite database")


def _stored_version(conn: sqlite3.Connection) -> int | None:
    tables = {
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if "mlf_meta" not in tables:
        if "predictions" in tables:
            raise ConfigError(
                "this SQLite file has a predictions table that mlf-middleware "
                "did not create: point the sink at another file"
            )
        return None
    row = conn.execute(
        "SELECT value FROM mlf_meta WHERE key = 'schema_version'"
    ).fetchone()
    return None if row is None else int(row[0])
