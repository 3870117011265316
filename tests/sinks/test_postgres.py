import logging
import os
import pickle
import sys
import threading
from datetime import UTC, datetime

import pytest

from mlf_middleware import Actual, Prediction, Recorder, _channel
from mlf_middleware.exceptions import ConfigError, SinkRejected, SinkUnavailable
from mlf_middleware.sinks import PostgresSink, open_sink

T = datetime(2024, 3, 1, 12, tzinfo=UTC)


def prediction(data_id, value, **extra):
    return Prediction(data_id, {"x": value}, {"value": value}, occurred_at=T, **extra)


# -- the URL (no server needed) ---------------------------------------------------


def test_url_parts_become_libpq_parameters():
    sink = open_sink(
        "postgresql://ada:p%40ss%3Aw%2Frd@db.example:6543/lake"
        "?sslmode=verify-full&connect_timeout=3&table_prefix=ml_"
    )

    assert sink._params == {
        "user": "ada",
        "password": "p@ss:w/rd",
        "host": "db.example",
        "port": "6543",
        "dbname": "lake",
        "sslmode": "verify-full",
        "connect_timeout": "3",
    }
    assert sink.tables == {
        "predictions": "ml_predictions",
        "actuals": "ml_actuals",
        "meta": "ml_meta",
    }


def test_socket_folder_may_be_given_in_the_query():
    sink = open_sink("postgres://ada@/lake?host=/run/Postgres%20Sock&port=5433")

    assert sink._params == {
        "user": "ada", "host": "/run/Postgres Sock", "port": "5433", "dbname": "lake",
    }
    assert sink.url == (
        "postgresql://ada@:5433/lake?host=/run/Postgres+Sock&table_prefix=mlf_"
    )


def test_password_never_shows_in_name_url_or_repr():
    sink = PostgresSink("postgresql://ada:s3cret-pw@[::1]:5432/lake?sslpassword=k3y")

    shown = " ".join([sink.name, sink.url, repr(sink), str(sink)])

    assert "s3cret-pw" not in shown
    assert "k3y" not in shown
    assert sink.url == "postgresql://ada@[::1]:5432/lake?table_prefix=mlf_"
    assert sink.name == "postgresql:::1/lake"


def test_pickles_as_configuration_with_its_password():
    sink = PostgresSink("postgresql://ada:pw@h/lake", table_prefix="x_")

    copy = pickle.loads(pickle.dumps(sink))

    assert (copy._params, copy.table_prefix, copy._conn) == (sink._params, "x_", None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql:///lake", "needs a host"),
        ("postgresql://h:99999/lake", "bad port '99999'"),
        ("postgresql://h:http/lake", "bad port"),
        ("postgresql://h/lake?colour=red", "unknown option 'colour'"),
        ("postgresql://h/lake?table_prefix=Bad-Name", "table_prefix must be"),
        ("postgresql://h/lake?table_prefix=1x", "table_prefix must be"),
        ("postgresql://h/lake?table_prefix=" + "x" * 41, "table_prefix must be"),
        ("postgresql://h1:5432,h2:5432/lake", "one host per URL"),
    ],
)
def test_bad_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match=message):
        open_sink(url)


# -- against the server ------------------------------------------------------------


@pytest.fixture
def sink(postgres_url):
    sink = PostgresSink(postgres_url)
    yield sink
    sink.close()


def test_tables_are_created_with_schema_version_and_jsonb(sink, postgres_server):
    sink.write([prediction("d1", 1)])

    with postgres_server.connect() as conn:
        meta = conn.execute(f"SELECT key, value FROM {sink.tables['meta']}").fetchall()
        kinds = conn.execute(
            "SELECT table_name, column_name, data_type "
            "FROM information_schema.columns "
            "WHERE table_name = ANY(%s) AND data_type IN ('jsonb', "
            "'timestamp with time zone') ORDER BY table_name, ordinal_position",
            ([sink.tables["predictions"], sink.tables["actuals"]],),
        ).fetchall()
    actuals, predictions = sink.tables["actuals"], sink.tables["predictions"]
    assert meta == [("schema_version", "1")]
    assert kinds == [
        (actuals, "occurred_at", "timestamp with time zone"),
        (actuals, "value", "jsonb"),
        (predictions, "occurred_at", "timestamp with time zone"),
        (predictions, "features", "jsonb"),
        (predictions, "prediction_data", "jsonb"),
        (predictions, "raw_data", "jsonb"),
        (predictions, "actual_value", "jsonb"),
    ]


def test_features_are_queryable_as_jsonb(sink, postgres_server):
    sink.write([Prediction("d1", {"age": 42, "nan": float("nan")}, {"value": 1})])

    with postgres_server.connect() as conn:
        row = conn.execute(
            f"SELECT features->'age', jsonb_typeof(features->'age'), "
            f"features->>'nan' FROM {sink.tables['predictions']}"
        ).fetchone()

    assert row == (42, "number", "NaN")


def test_record_postgres_cannot_hold_is_rejected_alone(sink):
    good, bad = prediction("d1", 1), prediction("d2", "nul \x00 inside")

    with pytest.raises(SinkRejected, match=r"SQLSTATE 22P05") as caught:
        sink.write([good, bad])
    sink.write([good])

    assert "nul" not in str(caught.value)
    assert caught.value.__suppress_context__
    assert sink.read_records() == [good]


def test_lost_connection_is_made_again(sink, postgres_server):
    sink.write([prediction("d1", 1)])
    with postgres_server.connect() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'mlf-middleware'"
        )

    with pytest.raises(SinkUnavailable, match="write failed"):
        sink.write([prediction("d2", 2)])
    sink.write([prediction("d3", 3)])

    assert [r.data_id for r in sink.read_records()] == ["d1", "d3"]


def test_recorder_delivers_across_a_lost_connection(postgres_url, postgres_server):
    rec = Recorder(postgres_url, batch_size=5, max_delay=0.01)
    for i in range(5):
        rec.record({"i": i}, {"value": i})
    assert rec.flush(30)
    with postgres_server.connect() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'mlf-middleware'"
        )

    for i in range(5, 10):
        rec.record({"i": i}, {"value": i})
    assert rec.flush(30)
    stats = rec.close(30)

    got = sorted(r.features["i"] for r in PostgresSink(postgres_url).read_records())
    assert (got, stats["written"], stats["failed_writes"]) == (list(range(10)), 10, 1)


def test_wrong_password_is_unavailable_and_never_logged(
    postgres_server, caplog, monkeypatch
):
    monkeypatch.setattr(_channel.warn, "_last", {})  # no rate limit from before
    server = postgres_server
    url = (
        f"postgresql://{server.user}:Wr0ng-Secret@{server.host}:{server.port}/"
        f"{server.dbname}"
    )
    caplog.set_level(logging.DEBUG)

    with pytest.raises(SinkUnavailable, match="password authentication failed") as e:
        PostgresSink(url).write([prediction("d1", 1)])
    rec = Recorder(url, spool_dir=False, max_delay=0.01)
    rec.record({"x": 1}, {"value": 1})
    rec.flush(0.5)
    rec.close(0.5)

    assert "Wr0ng-Secret" not in str(e.value)
    assert caplog.records
    assert "Wr0ng-Secret" not in caplog.text
    assert "cannot connect" in caplog.text or "write failed" in caplog.text


def test_store_from_newer_version_fails_with_advice(sink, postgres_server):
    sink.write([prediction("d1", 1)])
    with postgres_server.connect() as conn:
        conn.execute(f"UPDATE {sink.tables['meta']} SET value = '99'")

    with pytest.raises(ConfigError, match="newer mlf-middleware"):
        PostgresSink(sink._source).write([prediction("d2", 2)])


def test_table_not_made_by_us_is_refused(sink, postgres_server):
    with postgres_server.connect() as conn:
        conn.execute(f"CREATE TABLE {sink.tables['predictions']} (id int)")

    with pytest.raises(ConfigError, match="not created by mlf-middleware"):
        sink.write([prediction("d1", 1)])


def test_replicas_create_the_tables_together(postgres_url):
    sinks = [PostgresSink(postgres_url) for _ in range(4)]
    start = threading.Barrier(len(sinks))
    errors = []

    def write(n, sink):
        start.wait()
        try:
            sink.write([prediction(f"d{n}", n)])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=p) for p in enumerate(sinks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in sinks:
        s.close()

    assert errors == []
    assert sorted(r.data_id for r in sinks[0].read_records()) == [
        "d0", "d1", "d2", "d3",
    ]


def test_forked_child_uses_its_own_connection(sink):
    sink.write([prediction("parent-1", 1)])
    backend = sink._conn.info.backend_pid

    pid = os.fork()
    if pid == 0:  # the child: write, then leave without cleanup
        code = 1
        try:
            sink.write([prediction("child", 2)])
            code = 0 if sink._conn.info.backend_pid != backend else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    sink.write([prediction("parent-2", 3)])

    assert os.waitstatus_to_exitcode(status) == 0
    assert sink._conn.info.backend_pid == backend
    assert [r.data_id for r in sink.read_records()] == ["parent-1", "child", "parent-2"]


def test_socket_url_writes_without_password(postgres_server):
    url = postgres_server.socket_url(table_prefix="sock_")
    sink = PostgresSink(url)

    sink.write([prediction("d1", 1), Actual("d1", 0, occurred_at=T)])
    sink.close()

    assert [(r["data_id"], r["actual"]["value"]) for r in sink.joined()] == [("d1", 0)]


def test_reading_before_any_write_is_empty(sink):
    assert (sink.read_records(), sink.joined()) == ([], [])


def test_repeats_inside_one_batch_are_stored_once(sink):
    p, q = prediction("d1", 1), prediction("d2", 2)
    a = Actual("d1", 0, occurred_at=T)

    sink.write([p, q, p, a, a])
    sink.write([q, prediction("d3", 3)])

    assert [r.data_id for r in sink.read_records()] == ["d1", "d2", "d3", "d1"]


def test_tables_that_cannot_be_made_are_unavailable(postgres_url):
    sink = PostgresSink(postgres_url + "&options=-csearch_path%3Dno_such_schema")

    with pytest.raises(SinkUnavailable, match="cannot prepare the tables: no schema"):
        sink.write([prediction("d1", 1)])


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "mlf_middleware.sinks.postgres")

    with pytest.raises(ImportError, match=r"mlf-middleware\[postgres\]") as caught:
        open_sink("postgresql://h/db")
    assert caught.value.name == "psycopg"
