import importlib
import multiprocessing
import pickle
import stat
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlf_middleware import Actual, Prediction
from mlf_middleware.exceptions import ConfigError, SinkRejected
from mlf_middleware.sinks import ParquetSink, open_sink
from mlf_middleware.sinks import parquet as parquet_module

T = datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)


def prediction(data_id, value, *, at=T, model="m:1"):
    return Prediction(
        data_id, {"x": value, "nan": float("nan")}, {"value": value},
        occurred_at=at, model_version_fqn=model, latency_ms=2.5,
        raw_data={"trace": "t-1"},
    )


def test_layout_is_hive_partitioned_by_utc_date(tmp_path):
    sink = ParquetSink(tmp_path / "lake")

    sink.write(
        [
            prediction("d1", 1),
            prediction("d2", 2, at=T + timedelta(microseconds=1)),
            Actual("d1", 1, occurred_at=T),
        ]
    )

    files = sorted(
        p.relative_to(tmp_path / "lake").parent.as_posix()
        for p in (tmp_path / "lake").rglob("*.parquet")
    )
    assert files == [
        "actuals/date=2024-03-01",
        "predictions/date=2024-03-01",
        "predictions/date=2024-03-02",
    ]
    assert orjson.loads((tmp_path / "lake" / "_mlf_meta.json").read_bytes()) == {
        "schema_version": 1,
        "layout": "hive date partitions",
    }


def test_duckdb_reads_the_files_with_the_documented_schema(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    p = prediction("d1", 1.5)

    sink.write([p])

    conn = duckdb.connect()
    rows = conn.execute(
        "SELECT record_id, data_id, model_version_fqn, occurred_at, "
        "features, prediction_data, raw_data, latency_ms, actual_value, date "
        "FROM read_parquet(?, hive_partitioning = true)",
        [f"{tmp_path}/lake/predictions/*/*.parquet"],
    ).fetchall()
    conn.close()
    assert rows == [
        (
            p.record_id,
            "d1",
            "m:1",
            T,
            '{"x":1.5,"nan":"NaN"}',
            '{"value":1.5}',
            '{"trace":"t-1"}',
            2.5,
            None,
            T.date(),
        )
    ]


def test_pandas_reads_the_dataset(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction("d1", 1), Actual("d1", "yes", occurred_at=T)])

    frame = pd.read_parquet(tmp_path / "lake" / "actuals")

    assert frame.to_dict("records")[0]["value"] == '"yes"'
    assert str(frame["occurred_at"].dtype) == "datetime64[us, UTC]"
    assert frame["occurred_at"][0] == pd.Timestamp(T)
    assert str(frame["date"][0]) == "2024-03-01"


def test_file_schema_and_metadata(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction("d1", 1), Actual("d1", 1, occurred_at=T)])

    prediction_file = next((tmp_path / "lake" / "predictions").rglob("*.parquet"))
    actual_file = next((tmp_path / "lake" / "actuals").rglob("*.parquet"))
    schema = pq.read_schema(prediction_file)

    assert [(f.name, str(f.type), f.nullable) for f in schema] == [
        ("record_id", "string", False),
        ("data_id", "string", False),
        ("model_version_fqn", "string", True),
        ("occurred_at", "timestamp[us, tz=UTC]", False),
        ("features", "string", True),
        ("prediction_data", "string", True),
        ("raw_data", "string", True),
        ("latency_ms", "double", True),
        ("actual_value", "string", True),
    ]
    assert schema.metadata == {
        b"mlf.schema_version": b"1",
        b"mlf.dataset": b"predictions",
    }
    assert pq.read_schema(actual_file).names == [
        "record_id", "data_id", "model_version_fqn", "occurred_at", "value",
    ]


def test_files_and_folders_are_owner_only(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction("d1", 1)])

    lake = tmp_path / "lake"
    folders = [lake, lake / "predictions", lake / "predictions" / "date=2024-03-01"]
    files = [lake / "_mlf_meta.json", *lake.rglob("*.parquet")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction("d0", 0)])

    class Broken:
        def __init__(self, where, schema, **options):
            where.write(b"PAR1 torn")
            raise OSError("disk full")

    monkeypatch.setattr(pq, "ParquetWriter", Broken)
    with pytest.raises(OSError, match="disk full"):
        sink.write([prediction("d1", 1)])

    folder = tmp_path / "lake" / "predictions" / "date=2024-03-01"
    assert len(list(folder.iterdir())) == 1
    assert [r.data_id for r in sink.read_records()] == ["d0"]


def test_unfinished_temporary_file_is_invisible_to_readers(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction("d1", 1)])
    folder = tmp_path / "lake" / "predictions" / "date=2024-03-01"
    (folder / ".part-99-host-1-1.parquet.tmp").write_bytes(b"PAR1 half")

    assert [r.data_id for r in sink.read_records()] == ["d1"]
    assert len(pd.read_parquet(tmp_path / "lake" / "predictions")) == 1


def test_readers_drop_repeated_record_ids(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    batch = [prediction("d1", 1), prediction("d2", 2), Actual("d1", 1, occurred_at=T)]

    sink.write(batch)
    sink.write(batch[1:])

    assert len(list((tmp_path / "lake").rglob("*.parquet"))) == 4
    assert sink.read_records() == [
        Prediction("d1", {"x": 1, "nan": "NaN"}, {"value": 1}, T, {"trace": "t-1"},
                   "m:1", 2.5, record_id=batch[0].record_id),
        Prediction("d2", {"x": 2, "nan": "NaN"}, {"value": 2}, T, {"trace": "t-1"},
                   "m:1", 2.5, record_id=batch[1].record_id),
        batch[2],
    ]
    assert [r["data_id"] for r in sink.joined()] == ["d1", "d2"]


def test_joined_reads_only_folders_in_range(tmp_path, monkeypatch):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction(f"d{n}", n, at=T + timedelta(days=n)) for n in range(3)])
    read = []
    original = parquet_module._query
    monkeypatch.setattr(
        parquet_module, "_query",
        lambda sql, params: read.append(params["predictions"]) or original(sql, params),
    )

    rows = sink.joined(start=T + timedelta(days=1), end=T + timedelta(days=2))

    assert [r["data_id"] for r in rows] == ["d1"]
    assert [p.split("/")[-2] for p in read[0]] == ["date=2024-03-02", "date=2024-03-03"]


def test_malformed_wire_line_is_rejected(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    good = orjson.dumps(
        {"type": "actual", "record_id": "r", "data_id": "d", "value": 1,
         "occurred_at": "2024-03-01T00:00:00.000000Z"}
    )

    for bad in (b"not json", good.replace(b"2024-03-01T", b"../../T"),
                good.replace(b'"actual"', b'"other"'), b'{"type":"actual"}'):
        with pytest.raises(SinkRejected):
            sink.write_wire([good, bad])

    assert not (tmp_path / "lake" / "actuals").exists()


@pytest.mark.parametrize("codec", ["zstd", "none"])
def test_url_options_choose_codec_and_fsync(tmp_path, codec):
    sink = open_sink(f"parquet:///{tmp_path}/lake?compression={codec}&fsync=false")
    sink.write([prediction("d1", 1)])

    meta = pq.ParquetFile(next((tmp_path / "lake").rglob("*.parquet"))).metadata
    assert (sink.compression, sink.fsync) == (codec, False)
    assert meta.row_group(0).column(0).compression == codec.upper().replace(
        "NONE", "UNCOMPRESSED"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("parquet:///lake?compression=lzo", "compression must be one of"),
        ("parquet:///lake?fsync=maybe", "bad value for option 'fsync'"),
        ("parquet:///lake?partition=hour", "unknown option 'partition'"),
        ("parquet://", "needs a path"),
    ],
)
def test_bad_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match=message):
        open_sink(url)


def test_url_paths_follow_sqlalchemy_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert open_sink("parquet:///rel").path == tmp_path / "rel"
    assert open_sink(f"parquet:///{tmp_path}/abs").path == tmp_path / "abs"


def test_store_from_newer_version_fails_with_advice(tmp_path):
    ParquetSink(tmp_path / "lake").write([prediction("d", 1)])
    (tmp_path / "lake" / "_mlf_meta.json").write_text('{"schema_version": 2}')

    with pytest.raises(ConfigError, match="newer mlf-middleware"):
        ParquetSink(tmp_path / "lake").write([prediction("e", 1)])


def test_symlinked_dataset_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "predictions").symlink_to(tmp_path / "elsewhere")

    with pytest.raises(ConfigError, match="symbolic link"):
        ParquetSink(tmp_path / "lake").write([prediction("d", 1)])


def test_pickles_as_configuration(tmp_path):
    sink = ParquetSink(tmp_path / "lake", compression="zstd", fsync=False)

    copy = pickle.loads(pickle.dumps(sink))

    assert (copy.path, copy.compression, copy.fsync, repr(copy)) == (
        sink.path, "zstd", False, f"ParquetSink('{tmp_path}/lake')",
    )


def test_two_processes_write_one_folder(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_write_many, args=(tmp_path / "lake", n)) for n in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)

    assert [p.exitcode for p in procs] == [0, 0]
    got = ParquetSink(tmp_path / "lake").read_records()
    assert sorted((r.features["proc"], r.features["i"]) for r in got) == [
        (n, i) for n in range(2) for i in range(100)
    ]


def _write_many(path, n):
    from mlf_middleware import Recorder

    rec = Recorder(f"parquet:///{path}", batch_size=10)
    for i in range(100):
        rec.record({"proc": n, "i": i}, {"value": i})
    stats = rec.close(30)
    assert stats["written"] == 100


def test_arrow_table_keeps_exact_microseconds(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction("d1", 1)])

    table = pq.read_table(next((tmp_path / "lake").rglob("*.parquet")))

    assert table.column("occurred_at").to_pylist() == [T]
    assert table.schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")


def test_compact_merges_each_past_day_into_one_file(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    day2 = T + timedelta(days=1)
    first = [prediction("d1", 1), Actual("d1", 0, occurred_at=T)]
    sink.write(first)
    sink.write([prediction("d2", 2), first[0]])  # a repeat, dropped
    sink.write([prediction("d3", 3, at=day2)])
    sink.write([prediction("d4", 4, at=day2)])
    before = sink.read_records()

    merged = sink.compact(before=day2.date())

    lake = tmp_path / "lake"
    counts = {
        p.relative_to(lake).as_posix(): len(list(p.glob("*.parquet")))
        for p in sorted(lake.glob("*/date=*"))
    }
    assert merged == 2
    assert counts == {
        "actuals/date=2024-03-01": 1,
        "predictions/date=2024-03-01": 1,
        "predictions/date=2024-03-02": 2,
    }
    assert sink.read_records() == before
    assert pq.read_table(sink.files()[0]).num_rows == 2


def test_compact_leaves_today_alone(tmp_path):
    sink = ParquetSink(tmp_path / "lake")
    now = datetime.now(UTC)
    sink.write([prediction("d1", 1, at=now)])
    sink.write([prediction("d2", 2, at=now)])

    assert (sink.compact(), len(sink.files())) == (0, 2)


def test_reader_tries_again_when_a_file_vanishes(tmp_path, monkeypatch):
    sink = ParquetSink(tmp_path / "lake")
    sink.write([prediction("d1", 1)])
    listed = sink._files
    calls = []

    def vanishing(dataset, *days):
        calls.append(dataset)
        files = listed(dataset, *days)
        return [*files, f"{tmp_path}/gone.parquet"] if len(calls) == 1 else files

    monkeypatch.setattr(sink, "_files", vanishing)

    assert [r.data_id for r in sink.read_records()] == ["d1"]
    assert calls == ["predictions", "predictions", "actuals"]


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delitem(sys.modules, "mlf_middleware.sinks.parquet")

    with pytest.raises(ImportError, match=r"pip install 'mlf-middleware\[parquet\]'"):
        importlib.import_module("mlf_middleware.sinks.parquet")
