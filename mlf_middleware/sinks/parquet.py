"""ParquetSink: date-partitioned Parquet datasets, read back through DuckDB."""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .._files import open_private, private_dir, refuse_symlink
from ..exceptions import ConfigError, SinkRejected
from ..records import Actual, Prediction, encode, utc
from ._rows import actual_of, joined_row, json_text, prediction_of

try:
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
except ImportError as exc:
    raise ImportError(
        "the parquet sink needs pyarrow and duckdb: "
        "pip install 'mlf-middleware[parquet]'",
        name=exc.name,
    ) from exc

__all__ = ["SCHEMA_VERSION", "ParquetSink"]

SCHEMA_VERSION = 1

PREDICTIONS = "predictions"
ACTUALS = "actuals"
META_FILE = "_mlf_meta.json"

_COMPRESSIONS = ("snappy", "zstd", "gzip", "lz4", "brotli", "none")

# The wire form's timestamp: what the partition folder and the cast rely on.
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ROW_GROUP = 64 * 1024  # rows per row group in a compacted file

_T = TypeVar("_T")

# The columns holding JSON text, by dataset.
_JSON_COLUMNS = {
    PREDICTIONS: ("features", "prediction_data", "raw_data", "actual_value"),
    ACTUALS: ("value",),
}


def _flag(text: str) -> bool:
    """Read a yes/no URL option; raise ValueError for anything else."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


class ParquetSink:
    """Write records as Parquet files under ``path``, one dataset per kind.

    Layout (Hive-style, readable by DuckDB, pandas, Spark)::

        path/_mlf_meta.json
        path/predictions/date=YYYY-MM-DD/part-<stamp>-<host>-<pid>-<n>.parquet
        path/actuals/date=YYYY-MM-DD/part-<stamp>-<host>-<pid>-<n>.parquet

    The date is the record's ``occurred_at`` in UTC. Each batch becomes one
    file per dataset and date, written under a hidden temporary name and
    renamed into place, so readers never see a partial file. Files are
    append-only: a retried batch may store a record twice, and the readers
    here (``read_records``, ``joined``) keep one row per ``record_id``.

    Args:
        path: the dataset folder (created 0700; files are 0600).
        compression: Parquet codec: snappy (default), zstd, gzip, lz4,
            brotli or none.
        fsync: flush each file to disk before it is renamed into place
            (default True), so that a power cut never leaves a torn file
            under a final name. The folder itself is not synced: as with
            SQLite's WAL mode, the last batches before a power cut may be
            lost, but what is there is whole.
    """

    url_options = {"compression": str, "fsync": _flag}

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        compression: str = "snappy",
        fsync: bool = True,
    ) -> None:
        if compression not in _COMPRESSIONS:
            allowed = ", ".join(_COMPRESSIONS)
            raise ConfigError(
                f"parquet sink: compression must be one of {allowed}, "
                f"got {compression!r}"
            )
        self.path = Path(path).expanduser().absolute()
        self.compression = compression
        self.fsync = bool(fsync)
        self.name = f"parquet:{self.path.name}"
        self.url = f"parquet:///{self.path}"
        self._host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._checked = False

    # -- writing ---------------------------------------------------------------

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self.write_wire([encode(r) for r in records])

    def write_wire(self, lines: Sequence[bytes]) -> None:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for line in lines:
            obj = _parse(line)
            key = (_dataset(obj), obj["occurred_at"][:10])
            groups.setdefault(key, []).append(obj)
        if not groups:
            return

        self._check_meta()
        for (dataset, day), objs in sorted(groups.items()):
            self._write_file(dataset, day, [_table(dataset, objs)])

    def _check_meta(self) -> None:
        """Create the folder and its schema marker, or refuse a newer one."""
        if self._checked:
            return
        private_dir(self.path)
        meta = self.path / META_FILE
        refuse_symlink(meta)
        if not meta.exists():
            _create_meta(meta)
        _check_version(meta)
        self._checked = True

    def _write_file(self, dataset: str, day: str, tables: Iterable[Any]) -> None:
        """Write ``tables`` as one new file of the day, atomically."""
        folder = private_dir(private_dir(self.path / dataset) / f"date={day}")
        with self._lock:
            number = next(self._sequence)
        name = f"part-{time.time_ns():020d}-{self._host}-{os.getpid()}-{number}.parquet"
        # A leading dot hides the file from DuckDB's and pyarrow's readers
        # until it is complete.
        temp = folder / f".{name}.tmp"

        fd = open_private(temp, os.O_WRONLY | os.O_EXCL)
        try:
            with os.fdopen(fd, "wb") as file:
                with pq.ParquetWriter(
                    file, _schema(dataset), compression=self.compression
                ) as writer:
                    for table in tables:
                        writer.write_table(table)
                if self.fsync:
                    file.flush()
                    os.fsync(file.fileno())
            os.rename(temp, folder / name)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise

    def compact(self, *, before: date | None = None) -> int:
        """Merge each past day's files into one; return how many were merged.

        Every batch is a file of its own, so a quiet service leaves many
        small files: run this now and then (a daily job, say). Only days
        before ``before`` (default: today in UTC) are merged, since today is
        still being written. Repeated record_ids are dropped. It is safe
        while processes write; a reader that lists a day just as its files
        are replaced tries once more.
        """
        limit = (before or datetime.now(UTC).date()).isoformat()
        merged = 0
        for dataset in (PREDICTIONS, ACTUALS):
            days: dict[str, list[str]] = {}
            for file in self._files(dataset):
                days.setdefault(Path(file).parent.name[len("date=") :], []).append(file)
            for day, files in days.items():
                if day >= limit or len(files) < 2:
                    continue
                self._write_file(dataset, day, _merged(dataset, files))
                for file in files:
                    with suppress(FileNotFoundError):
                        os.unlink(file)
                merged += len(files)

        return merged

    def close(self) -> None:
        """Nothing stays open between batches: every file is complete."""

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------

    def files(self, dataset: str = PREDICTIONS) -> list[Path]:
        """The finished Parquet files of one dataset, oldest date first."""
        return [Path(f) for f in self._files(dataset)]

    def _files(
        self, dataset: str, first: str | None = None, last: str | None = None
    ) -> list[str]:
        root = self.path / dataset
        if not root.is_dir():
            return []
        found: list[str] = []
        for folder in sorted(root.glob("date=*")):
            day = folder.name[len("date=") :]
            if (first and day < first) or (last and day > last):
                continue
            found.extend(str(f) for f in sorted(folder.glob("part-*.parquet")))
        return found

    def read_records(self) -> list[Prediction | Actual]:
        """Every stored record once: predictions first, each in write order."""
        return _retried(self._read_records)

    def _read_records(self) -> list[Prediction | Actual]:
        out: list[Prediction | Actual] = []
        predictions = self._files(PREDICTIONS)
        if predictions:
            rows = _query(_READ_PREDICTIONS, {"files": predictions})
            out.extend(prediction_of(row, _moment) for row in rows)
        actuals = self._files(ACTUALS)
        if actuals:
            rows = _query(_READ_ACTUALS, {"files": actuals})
            out.extend(actual_of(row, _moment) for row in rows)

        return out

    def joined(
        self,
        model_version_fqn: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Every prediction in [start, end) with its latest actual, or None.

        The row shape is SQLiteSink's. Only the date folders that can hold
        predictions in range are read; actuals are read whole, since an
        actual may arrive long after its prediction.
        """
        return _retried(lambda: self._joined(model_version_fqn, start, end))

    def _joined(
        self,
        model_version_fqn: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> list[dict[str, Any]]:
        first = None if start is None else utc(start).date().isoformat()
        last = None if end is None else utc(end).date().isoformat()
        predictions = self._files(PREDICTIONS, first, last)
        if not predictions:
            return []
        actuals = self._files(ACTUALS)

        params: dict[str, Any] = {
            "predictions": predictions,
            "model": model_version_fqn,
            "start": _micros(start),
            "end": _micros(end),
        }
        source = _EMPTY_ACTUALS
        if actuals:
            source = _reader("$actuals")
            params["actuals"] = actuals
        sql = _JOINED.format(
            predictions=_reader("$predictions"), actuals=source, first=_FIRST
        )
        rows = _query(sql, params)

        return [joined_row(row, _moment) for row in rows]

    # -- configuration -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "compression": self.compression,
            "fsync": self.fsync,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"],
            compression=state["compression"],
            fsync=state["fsync"],
        )

    def __repr__(self) -> str:
        return f"ParquetSink({str(self.path)!r})"


# -- rows to Arrow tables --------------------------------------------------------


def _parse(line: bytes) -> dict[str, Any]:
    """Decode one wire line; refuse what could never be stored."""
    try:
        obj = orjson.loads(line)
        stamp = obj["occurred_at"]
        kind = obj["type"]
        record_id, data_id = obj["record_id"], obj["data_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise SinkRejected("parquet: a record is not in the wire form") from None
    if not isinstance(stamp, str) or not _STAMP.match(stamp):
        raise SinkRejected("parquet: a record has a malformed occurred_at")
    if kind not in ("prediction", "actual"):
        raise SinkRejected("parquet: a record has an unknown type")
    if not isinstance(record_id, str) or not isinstance(data_id, str):
        raise SinkRejected("parquet: record_id and data_id must be strings")

    return obj


def _dataset(obj: dict[str, Any]) -> str:
    return PREDICTIONS if obj["type"] == "prediction" else ACTUALS


def _schema(dataset: str) -> Any:
    text, json_text = pa.string(), pa.string()
    fields = [
        pa.field("record_id", text, nullable=False),
        pa.field("data_id", text, nullable=False),
        pa.field("model_version_fqn", text),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
    if dataset == PREDICTIONS:
        fields += [
            pa.field("features", json_text),
            pa.field("prediction_data", json_text),
            pa.field("raw_data", json_text),
            pa.field("latency_ms", pa.float64()),
            pa.field("actual_value", json_text),
        ]
    else:
        fields.append(pa.field("value", json_text))
    metadata = {
        "mlf.schema_version": str(SCHEMA_VERSION),
        "mlf.dataset": dataset,
    }

    return pa.schema(fields, metadata=metadata)


def _table(dataset: str, objs: list[dict[str, Any]]) -> Any:
    schema = _schema(dataset)
    stamps = pa.array([o["occurred_at"] for o in objs], pa.string())
    columns: dict[str, Any] = {
        "record_id": [o["record_id"] for o in objs],
        "data_id": [o["data_id"] for o in objs],
        "model_version_fqn": [o.get("model_version_fqn") for o in objs],
        "occurred_at": pc.cast(stamps, pa.timestamp("us", tz="UTC")),
    }
    for name in _JSON_COLUMNS[dataset]:
        columns[name] = [json_text(o.get(name)) for o in objs]
    if dataset == PREDICTIONS:
        columns["latency_ms"] = [o.get("latency_ms") for o in objs]
    try:
        return pa.Table.from_pydict(
            {name: columns[name] for name in schema.names}, schema=schema
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise SinkRejected("parquet: a record has a field of the wrong type") from None


def _merged(dataset: str, files: list[str]) -> Iterator[Any]:
    """The files' rows in order, each record_id once, in large row groups."""
    schema = _schema(dataset)
    seen: set[str] = set()
    pending: list[Any] = []
    rows = 0
    for file in files:
        table = pq.read_table(file, partitioning=None)
        table = table.select(schema.names).cast(schema)
        keep = []
        for index, record_id in enumerate(table.column("record_id").to_pylist()):
            if record_id not in seen:
                seen.add(record_id)
                keep.append(index)
        pending.append(table.take(keep))
        rows += len(keep)
        if rows >= _ROW_GROUP:
            yield pa.concat_tables(pending)
            pending, rows = [], 0
    if pending:
        yield pa.concat_tables(pending)


# -- files ---------------------------------------------------------------------------


def _create_meta(meta: Path) -> None:
    """Write the marker atomically; another process may race to do it too."""
    text = orjson.dumps(
        {"schema_version": SCHEMA_VERSION, "layout": "hive date partitions"}
    )
    temp = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    fd = open_private(temp, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text)
    finally:
        os.close(fd)
    try:
        os.link(temp, meta)
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)


def _check_version(meta: Path) -> None:
    try:
        version = int(orjson.loads(meta.read_bytes())["schema_version"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{meta} is not an mlf-middleware marker: point the parquet sink "
            "at another folder"
        ) from None
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{meta.parent} was written by a newer mlf-middleware (schema "
            f"{version}, this one knows {SCHEMA_VERSION}): upgrade "
            "mlf-middleware or point the sink at another folder"
        )


# -- DuckDB queries ------------------------------------------------------------------


def _reader(files: str) -> str:
    return (
        f"read_parquet({files}, hive_partitioning = true, union_by_name = true, "
        "filename = true, file_row_number = true)"
    )


# One row per record_id (the first written): a retried batch is harmless.
_FIRST = """QUALIFY row_number() OVER (
        PARTITION BY record_id ORDER BY filename, file_row_number) = 1"""

_READ_PREDICTIONS = f"""
SELECT record_id, data_id, model_version_fqn, epoch_us(occurred_at),
       features, prediction_data, raw_data, latency_ms, actual_value
FROM {_reader("$files")}
{_FIRST}
ORDER BY filename, file_row_number
"""

_READ_ACTUALS = f"""
SELECT record_id, data_id, model_version_fqn, epoch_us(occurred_at), value
FROM {_reader("$files")}
{_FIRST}
ORDER BY filename, file_row_number
"""

# Stands in for the actuals dataset before any actual is written.
_EMPTY_ACTUALS = """(
    SELECT NULL::VARCHAR AS record_id, NULL::VARCHAR AS data_id,
           NULL::VARCHAR AS model_version_fqn, NULL::TIMESTAMPTZ AS occurred_at,
           NULL::VARCHAR AS value, NULL::VARCHAR AS filename,
           NULL::BIGINT AS file_row_number
    LIMIT 0)"""

# SQLiteSink's join: each prediction with the latest actual for its data_id;
# models must match when both records name one.
_JOINED = """
WITH p AS (
    SELECT record_id, data_id, model_version_fqn, occurred_at, features,
           prediction_data, raw_data, latency_ms, filename, file_row_number
    FROM {predictions}
    WHERE ($model IS NULL OR model_version_fqn = $model)
      AND ($start IS NULL OR epoch_us(occurred_at) >= $start)
      AND ($end IS NULL OR epoch_us(occurred_at) < $end)
    {first}
),
a AS (
    SELECT record_id, data_id, model_version_fqn, occurred_at, value,
           filename, file_row_number
    FROM {actuals}
    {first}
),
best AS (
    SELECT p.record_id AS prediction_id, a.record_id, a.value, a.occurred_at,
           row_number() OVER (
               PARTITION BY p.record_id
               ORDER BY a.occurred_at DESC, a.filename DESC,
                        a.file_row_number DESC
           ) AS rank
    FROM p JOIN a ON a.data_id = p.data_id
        AND (a.model_version_fqn IS NULL OR p.model_version_fqn IS NULL
             OR a.model_version_fqn = p.model_version_fqn)
)
SELECT p.record_id, p.data_id, p.model_version_fqn, epoch_us(p.occurred_at),
       p.features, p.prediction_data, p.raw_data, p.latency_ms,
       b.record_id, b.value, epoch_us(b.occurred_at)
FROM p LEFT JOIN best AS b ON b.prediction_id = p.record_id AND b.rank = 1
ORDER BY p.occurred_at, p.filename, p.file_row_number
"""


def _retried(attempt: Callable[[], _T]) -> _T:
    """Run a read; once more if a file vanished under it (compaction)."""
    try:
        return attempt()
    except duckdb.IOException:
        return attempt()


def _query(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    conn = duckdb.connect()
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _micros(value: datetime | None) -> int | None:
    if value is None:
        return None
    return (utc(value) - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
