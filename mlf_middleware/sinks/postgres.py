"""PostgresSink: a shared store for many replicas and machines (psycopg 3)."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import orjson

from ..exceptions import ConfigError, SinkRejected, SinkUnavailable
from ..records import Actual, Prediction, encode, utc
from ._rows import (
    ACTUAL_COLUMNS,
    PREDICTION_COLUMNS,
    actual_of,
    actual_values,
    joined_row,
    prediction_of,
    prediction_values,
)

try:
    import psycopg
    from psycopg.errors import UniqueViolation
except ImportError as exc:
    raise ImportError(
        "the postgresql sink needs psycopg 3: pip install 'mlf-middleware[postgres]'",
        name=exc.name,
    ) from exc

__all__ = ["SCHEMA_VERSION", "PostgresSink"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Lower case only, so that quoted and unquoted names agree; 40 characters
# leave room for the longest index name within PostgreSQL's 63.
_PREFIX = re.compile(r"(?:[a-z_][a-z0-9_]{0,39})?\Z")

# libpq connection parameters a URL may carry in its query string.
_LIBPQ = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "connect_timeout",
        "options",
        "application_name",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "sslpassword",
        "channel_binding",
        "gssencmode",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    }
)
_SECRETS = ("password", "sslpassword")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS {meta} (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {predictions} (
    record_id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    data_id text NOT NULL,
    model_version_fqn text,
    occurred_at timestamptz NOT NULL,
    features jsonb NOT NULL,
    prediction_data jsonb NOT NULL,
    raw_data jsonb,
    latency_ms double precision,
    actual_value jsonb
);
CREATE INDEX IF NOT EXISTS {predictions}_data_id ON {predictions} (data_id);
CREATE INDEX IF NOT EXISTS {predictions}_occurred_at
    ON {predictions} (occurred_at);
CREATE TABLE IF NOT EXISTS {actuals} (
    record_id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    data_id text NOT NULL,
    model_version_fqn text,
    occurred_at timestamptz NOT NULL,
    value jsonb
);
CREATE INDEX IF NOT EXISTS {actuals}_data_id ON {actuals} (data_id, occurred_at)
"""

# A batch is copied straight into its table. When a record_id is already
# there (a retried batch), the batch goes instead through a session-local
# staging table and ON CONFLICT DO NOTHING, which skips what is stored; that
# path costs about twice the server time, so it is kept for retries.
_INCOMING = """
CREATE TEMP TABLE IF NOT EXISTS mlf_incoming_predictions (
    n integer, record_id text, data_id text, model_version_fqn text,
    occurred_at timestamptz, features jsonb, prediction_data jsonb,
    raw_data jsonb, latency_ms double precision, actual_value jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS mlf_incoming_actuals (
    n integer, record_id text, data_id text, model_version_fqn text,
    occurred_at timestamptz, value jsonb
) ON COMMIT DELETE ROWS
"""

_MOVE = """
INSERT INTO {table} ({columns})
SELECT {columns} FROM {incoming} ORDER BY n
ON CONFLICT (record_id) DO NOTHING
"""

# SQLiteSink's join: each prediction with the latest actual for its data_id;
# models must match when both records name one.
_JOINED = """
SELECT p.record_id, p.data_id, p.model_version_fqn, p.occurred_at,
       p.features::text, p.prediction_data::text, p.raw_data::text,
       p.latency_ms, a.record_id, a.value::text, a.occurred_at
FROM {predictions} AS p
LEFT JOIN LATERAL (
    SELECT a2.record_id, a2.value, a2.occurred_at
    FROM {actuals} AS a2
    WHERE a2.data_id = p.data_id
      AND (a2.model_version_fqn IS NULL OR p.model_version_fqn IS NULL
           OR a2.model_version_fqn = p.model_version_fqn)
    ORDER BY a2.occurred_at DESC, a2.seq DESC
    LIMIT 1
) AS a ON true
WHERE (%(model)s::text IS NULL OR p.model_version_fqn = %(model)s::text)
  AND (%(start)s::timestamptz IS NULL OR p.occurred_at >= %(start)s::timestamptz)
  AND (%(end)s::timestamptz IS NULL OR p.occurred_at < %(end)s::timestamptz)
ORDER BY p.occurred_at, p.seq
"""


class PostgresSink:
    """Write records to PostgreSQL tables that join on ``data_id``.

    ``url`` is a libpq URL, ``postgresql://user:password@host:5432/db``,
    whose query may carry libpq parameters (``sslmode``, ``connect_timeout``,
    ``host=/socket/dir`` for a unix socket, ...) and ``table_prefix``
    (default ``mlf_``): the tables are ``<prefix>predictions``,
    ``<prefix>actuals`` and ``<prefix>meta`` (the schema version), created
    when missing. The password may also come from ``PGPASSWORD`` or a
    ``.pgpass`` file, as libpq reads them; it never appears in ``name``,
    ``url``, ``repr`` or a log message.

    The connection is made on first write, in the writing thread, and made
    afresh after a fork or a lost connection.
    """

    def __init__(self, url: str, *, table_prefix: str | None = None) -> None:
        params, prefix = _parse_url(url)
        prefix = prefix if table_prefix is None else table_prefix
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ConfigError(
                "postgresql sink: table_prefix must be lower-case letters, "
                f"digits and _ (at most 40, not starting with a digit), "
                f"got {prefix!r:.60}"
            )
        self._source = url
        self._params = params
        self.table_prefix = prefix
        self.tables = {
            kind: f"{prefix}{kind}" for kind in ("predictions", "actuals", "meta")
        }
        self.url = _public_url(params, prefix)
        host = params.get("host") or params.get("hostaddr", "")
        self.name = f"postgresql:{host}/{params.get('dbname', '')}"
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()

    @classmethod
    def from_url(cls, url: str) -> PostgresSink:
        """Build the sink from its URL (what ``open_sink`` calls)."""
        return cls(url)

    # -- connection ------------------------------------------------------------

    def _open(self) -> psycopg.Connection[Any]:
        options = {"connect_timeout": "10", "application_name": "mlf-middleware"}
        options.update(self._params)
        try:
            return psycopg.connect(autocommit=True, **options)
        except psycopg.Error as exc:
            raise SinkUnavailable(
                f"postgresql: cannot connect: {self._scrub(exc)}"
            ) from None

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._open()
        try:
            with conn.transaction():
                self._migrate(conn)
            conn.execute(_INCOMING)
        except psycopg.Error as exc:
            conn.close()
            raise SinkUnavailable(
                f"postgresql: cannot prepare the tables: {self._scrub(exc)}"
            ) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create the tables once, whichever replica comes first."""
        tables = self.tables
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            (f"mlf-middleware:{self.table_prefix}",),
        )
        version = self._stored_version(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise ConfigError(
                f"table {tables['meta']} says schema {version}, written by a "
                f"newer mlf-middleware (this one knows {SCHEMA_VERSION}): "
                "upgrade mlf-middleware or choose another table_prefix"
            )
        if version == SCHEMA_VERSION:
            return

        for statement in _SCHEMA.format(**tables).split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            f"INSERT INTO {tables['meta']} VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO NOTHING",
            (str(SCHEMA_VERSION),),
        )

    def _stored_version(self, conn: psycopg.Connection[Any]) -> int | None:
        found = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
            (self.tables["meta"], self.tables["predictions"]),
        ).fetchone()
        has_meta, has_predictions = found if found else (False, False)
        if not has_meta:
            if has_predictions:
                raise ConfigError(
                    f"table {self.tables['predictions']} exists but was not "
                    "created by mlf-middleware: choose another table_prefix"
                )
            return None
        row = conn.execute(
            f"SELECT value FROM {self.tables['meta']} WHERE key = 'schema_version'"
        ).fetchone()
        return None if row is None else int(row[0])

    def _connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():
            # The parent's connection is the parent's: never touch it.
            self._conn, self._pid = None, os.getpid()
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing left to release
                log.debug("sink %s: closing a broken connection failed", self.name)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._conn, self._pid = None, os.getpid()

    def _scrub(self, exc: BaseException) -> str:
        """The first line of a connection error, with any secret removed."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        for key in _SECRETS:
            secret = self._params.get(key)
            if secret:
                text = text.replace(secret, "***")
        return text or type(exc).__name__

    # -- writing ---------------------------------------------------------------

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self.write_wire([encode(r) for r in records])

    def write_wire(self, lines: Sequence[bytes]) -> None:
        predictions: list[tuple[Any, ...]] = []
        actuals: list[tuple[Any, ...]] = []
        for line in lines:
            obj = _parse(line)
            if obj["type"] == "prediction":
                predictions.append(prediction_values(obj))
            else:
                actuals.append(actual_values(obj))

        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    self._insert(conn, "predictions", predictions)
                    self._insert(conn, "actuals", actuals)
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                # Never the record's text: PostgreSQL quotes values in details.
                raise SinkRejected(
                    f"postgresql: a record was refused ({_code(exc)})"
                ) from None
            except psycopg.Error as exc:
                self._drop_connection()
                raise SinkUnavailable(
                    f"postgresql: write failed ({_code(exc)})"
                ) from None

    def _insert(
        self, conn: psycopg.Connection[Any], kind: str, rows: list[tuple[Any, ...]]
    ) -> None:
        if not rows:
            return
        columns = PREDICTION_COLUMNS if kind == "predictions" else ACTUAL_COLUMNS
        names = ", ".join(columns)
        table, incoming = self.tables[kind], f"mlf_incoming_{kind}"

        try:
            with conn.transaction():  # a savepoint: only this step undone
                _copy(conn, f"COPY {table} ({names}) FROM STDIN", rows)
        except UniqueViolation:
            numbered = [(n, *row) for n, row in enumerate(rows)]
            _copy(conn, f"COPY {incoming} (n, {names}) FROM STDIN", numbered)
            conn.execute(_MOVE.format(table=table, columns=names, incoming=incoming))

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._drop_connection()
            self._conn = None

    # -- reading ---------------------------------------------------------------

    def _fetch(self, *queries: tuple[str, Any]) -> list[list[tuple[Any, ...]]]:
        """Run read-only queries on a connection of their own."""
        conn = self._open()
        try:
            if self._stored_version(conn) is None:
                return [[] for _ in queries]
            return [conn.execute(sql, params).fetchall() for sql, params in queries]
        finally:
            conn.close()

    def joined(
        self,
        model_version_fqn: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Every prediction in [start, end) with its latest actual, or None."""
        params = {
            "model": model_version_fqn,
            "start": None if start is None else utc(start),
            "end": None if end is None else utc(end),
        }
        [rows] = self._fetch((_JOINED.format(**self.tables), params))

        return [joined_row(row, _utc) for row in rows]

    def read_records(self) -> list[Prediction | Actual]:
        """Every stored record, predictions first, each in insertion order."""
        tables = self.tables
        predictions, actuals = self._fetch(
            (
                "SELECT record_id, data_id, model_version_fqn, occurred_at, "
                "features::text, prediction_data::text, raw_data::text, "
                "latency_ms, actual_value::text "
                f"FROM {tables['predictions']} ORDER BY seq",
                None,
            ),
            (
                "SELECT record_id, data_id, model_version_fqn, occurred_at, "
                f"value::text FROM {tables['actuals']} ORDER BY seq",
                None,
            ),
        )

        out: list[Prediction | Actual] = [prediction_of(r, _utc) for r in predictions]
        out.extend(actual_of(r, _utc) for r in actuals)
        return out

    # -- configuration ---------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # Configuration only (the password included, so that a copy in a
        # Ray replica or a spawned process can connect); no connection.
        return {"url": self._source, "table_prefix": self.table_prefix}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"], table_prefix=state["table_prefix"]
        )

    def __repr__(self) -> str:
        return f"PostgresSink({self.url!r})"


# -- the URL ---------------------------------------------------------------------


def _parse_url(url: str) -> tuple[dict[str, str], str]:
    """Split a postgresql:// URL into libpq parameters and the table prefix."""
    if not isinstance(url, str):
        raise ConfigError("postgresql sink: the URL must be a string")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigError("postgresql sink URL must start with postgresql://")

    params: dict[str, str] = {}
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password is not None:
        params["password"] = unquote(parts.password)
    host, port = _host_and_port(parts.netloc.rpartition("@")[2])
    if host:
        params["host"] = host
    if port:
        params["port"] = port
    if parts.path.strip("/"):
        params["dbname"] = unquote(parts.path[1:])

    prefix = "mlf_"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "table_prefix":
            prefix = value
        elif key in _LIBPQ:
            params[key] = value
        else:
            raise ConfigError(
                f"postgresql sink: unknown option {key!r} (allowed: table_prefix "
                "and libpq parameters such as sslmode, connect_timeout, host)"
            )

    if not params.get("host") and not params.get("hostaddr"):
        raise ConfigError(
            "postgresql sink URL needs a host: postgresql://user@host:5432/db, "
            "or ?host=/socket/folder for a unix socket"
        )
    _check_port(params.get("port"))
    return params, prefix


def _host_and_port(location: str) -> tuple[str, str]:
    """Read ``host``, ``host:port`` or ``[v6]:port``, keeping the host's case."""
    if location.startswith("["):
        host, _, rest = location[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else rest
    if "," in location:
        raise ConfigError(
            "postgresql sink: one host per URL (several hosts are not supported)"
        )
    host, _, port = location.partition(":")

    return unquote(host), port


def _check_port(port: str | None) -> None:
    if port is None:
        return
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"postgresql sink: bad port {port!r:.20}")


def _public_url(params: dict[str, str], prefix: str) -> str:
    """The URL without secrets: for names, logs and spool folders."""
    user = quote(params["user"], safe="") + "@" if "user" in params else ""
    host = params.get("host", "")
    query = {
        key: value
        for key, value in params.items()
        if key not in ("user", "host", "port", "dbname", *_SECRETS)
    }
    if host.startswith("/"):
        query, host = {"host": host, **query}, ""
    elif ":" in host:
        host = f"[{host}]"
    port = f":{params['port']}" if "port" in params else ""
    query["table_prefix"] = prefix
    dbname = quote(params.get("dbname", ""), safe="")

    return f"postgresql://{user}{quote(host, safe='[]:')}{port}/{dbname}?" + urlencode(
        query, safe="/"
    )


# -- rows --------------------------------------------------------------------------


def _parse(line: bytes) -> dict[str, Any]:
    """Decode one wire line; refuse what could never be stored."""
    try:
        obj = orjson.loads(line)
        fields = (obj["type"], obj["record_id"], obj["data_id"], obj["occurred_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        fields = ()
    if not fields or fields[0] not in ("prediction", "actual"):
        raise SinkRejected("postgresql: a record is not in the wire form")
    if not all(isinstance(field, str) for field in fields):
        raise SinkRejected("postgresql: a record has a field of the wrong type")

    return obj


def _copy(conn: psycopg.Connection[Any], statement: str, rows: list[Any]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _code(exc: BaseException) -> str:
    """Name an error by type and SQLSTATE only: messages may quote values."""
    sqlstate = getattr(exc, "sqlstate", None)
    name = type(exc).__name__

    return f"{name}, SQLSTATE {sqlstate}" if sqlstate else name


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
