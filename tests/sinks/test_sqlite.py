import sqlite3
import stat
from datetime import UTC, datetime

import pytest

from mlf_middleware import Actual, Prediction
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.sinks import SQLiteSink, open_sink

T = datetime(2024, 3, 1, 12, tzinfo=UTC)


def prediction(data_id, value, *, at=T, model="m:1", record_id=None):
    extra = {"record_id": record_id} if record_id else {}
    return Prediction(
        data_id,
        {"x": value},
        {"value": value},
        occurred_at=at,
        model_version_fqn=model,
        latency_ms=1.0,
        **extra,
    )


def test_written_records_read_back_in_wire_form(tmp_path):
    sink = SQLiteSink(tmp_path / "s.db")
    p = prediction("d1", 1.5)
    a = Actual("d1", 2, occurred_at=T)

    sink.write([p, a])

    assert sink.read_records() == [p, a]


def test_retried_batch_stores_each_record_once(tmp_path):
    sink = SQLiteSink(tmp_path / "s.db")
    batch = [prediction("d1", 1), prediction("d2", 2), Actual("d1", 1)]

    sink.write(batch)
    sink.write(batch)

    assert len(sink.read_records()) == 3


def test_joined_takes_latest_actual_and_matching_model(tmp_path):
    sink = SQLiteSink(tmp_path / "s.db")
    sink.write(
        [
            prediction("d1", 1),
            prediction("d2", 2, model="m:2"),
            prediction("d3", 3),
            Actual("d1", "old", occurred_at=datetime(2024, 3, 2, tzinfo=UTC)),
            Actual("d1", "new", occurred_at=datetime(2024, 3, 3, tzinfo=UTC)),
            Actual("d2", "other model", model_version_fqn="m:1"),
        ]
    )

    rows = sink.joined()

    assert [(r["data_id"], r["actual"] and r["actual"]["value"]) for r in rows] == [
        ("d1", "new"),
        ("d2", None),
        ("d3", None),
    ]
    assert [r["data_id"] for r in sink.joined("m:2")] == ["d2"]


def test_joined_filters_by_time_range(tmp_path):
    sink = SQLiteSink(tmp_path / "s.db")
    sink.write([prediction(f"d{h}", h, at=T.replace(hour=h)) for h in (9, 10, 11)])

    rows = sink.joined(start=T.replace(hour=10), end=T.replace(hour=11))

    assert [r["data_id"] for r in rows] == ["d10"]


def test_files_are_owner_only(tmp_path):
    sink = SQLiteSink(tmp_path / "new" / "s.db")
    sink.write([prediction("d", 1)])

    mode = stat.S_IMODE((tmp_path / "new" / "s.db").stat().st_mode)
    dir_mode = stat.S_IMODE((tmp_path / "new").stat().st_mode)
    wal_mode = stat.S_IMODE((tmp_path / "new" / "s.db-wal").stat().st_mode)
    assert (mode, wal_mode, dir_mode) == (0o600, 0o600, 0o700)


def test_symlinked_store_is_refused(tmp_path):
    (tmp_path / "target.db").write_bytes(b"")
    (tmp_path / "link.db").symlink_to(tmp_path / "target.db")

    with pytest.raises(ConfigError, match="symbolic link"):
        SQLiteSink(tmp_path / "link.db").write([prediction("d", 1)])


def test_store_from_newer_version_fails_with_advice(tmp_path):
    path = tmp_path / "s.db"
    SQLiteSink(path).write([prediction("d", 1)])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE mlf_meta SET value = '99'")

    with pytest.raises(ConfigError, match="newer mlf-middleware"):
        SQLiteSink(path).write([prediction("e", 1)])


def test_url_paths_follow_sqlalchemy_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    rel = open_sink("sqlite:///rel.db")
    absolute = open_sink(f"sqlite:///{tmp_path}/abs.db")

    assert rel.path == tmp_path / "rel.db"
    assert absolute.path == tmp_path / "abs.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "needs a path"),
        ("nosuch:///x", "unknown sink scheme 'nosuch'"),
        ("sqlite:///x.db?colour=red", "unknown option 'colour'"),
        ("sqlite:///x.db?timeout=soon", "bad value for option 'timeout'"),
        ("just-a-path.db", "scheme://"),
    ],
)
def test_bad_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match=message):
        open_sink(url)


def test_two_processes_write_one_file(tmp_path):
    import multiprocessing

    path = tmp_path / "shared.db"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, n)) for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)

    assert [p.exitcode for p in procs] == [0, 0]
    assert len(SQLiteSink(path).read_records()) == 400


def _write_many(path, n):
    from mlf_middleware import Recorder

    rec = Recorder(f"sqlite:///{path}", batch_size=10)
    for i in range(200):
        rec.record({"proc": n, "i": i}, {"value": i})
    stats = rec.close(30)
    assert stats["written"] == 200


def test_unusable_paths_are_refused_when_the_sink_is_made(tmp_path):
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "text.db").write_text("not a database at all")

    for path, message in [
        (tmp_path / "folder.db", "is a folder"),
        (tmp_path / "file" / "under.db", "is not a folder"),
        (tmp_path / "text.db", "not a SQLite database"),
    ]:
        with pytest.raises(ConfigError, match=message):
            SQLiteSink(path)
