import gzip
import multiprocessing
import os
import pickle
import stat
from datetime import UTC, datetime

import orjson
import pytest

from mlf_middleware import Actual, Prediction
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.records import encode
from mlf_middleware.sinks import JSONLSink, open_sink
from mlf_middleware.sinks import jsonl as jsonl_module

T = datetime(2024, 3, 1, 12, tzinfo=UTC)


def prediction(n):
    return Prediction(f"d{n}", {"n": n, "nan": float("nan")}, {"value": n}, T)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(jsonl_module, "_clock", lambda: now[0])
    return now


def test_each_record_is_one_strict_json_line(tmp_path):
    sink = JSONLSink(tmp_path)
    p, a = prediction(1), Actual("d1", float("inf"), occurred_at=T)

    sink.write([p, a])
    sink.close()

    [file] = sink.files()
    assert file.read_bytes() == encode(p) + b"\n" + encode(a) + b"\n"
    assert b'"nan":"NaN"' in encode(p)
    assert b'"value":"Infinity"' in encode(a)


def test_file_past_max_bytes_is_rotated(tmp_path):
    line = len(encode(prediction(0))) + 1
    sink = JSONLSink(tmp_path, max_bytes=2 * line)

    for n in range(5):
        sink.write([prediction(n)])
    sink.close()

    sizes = [f.stat().st_size for f in sink.files()]
    assert sizes == [2 * line, 2 * line, line]
    assert [r.data_id for r in sink.read_records()] == [f"d{n}" for n in range(5)]


def test_file_older_than_max_seconds_is_rotated(tmp_path, clock):
    sink = JSONLSink(tmp_path, max_seconds=60)

    sink.write([prediction(1)])
    clock[0] += 59.9
    sink.write([prediction(2)])
    clock[0] += 0.1
    sink.write([prediction(3)])
    sink.close()

    assert [f.read_bytes().count(b"\n") for f in sink.files()] == [2, 1]


def test_max_seconds_zero_turns_time_rotation_off(tmp_path, clock):
    sink = JSONLSink(tmp_path, max_seconds=0)

    sink.write([prediction(1)])
    clock[0] += 10**9
    sink.write([prediction(2)])

    assert len(sink.files()) == 1


def test_gzip_file_is_partial_until_finished(tmp_path):
    sink = JSONLSink(tmp_path, gzip=True)
    batches = [[prediction(1), prediction(2)], [prediction(3)]]

    for batch in batches:
        sink.write(batch)
    [open_file] = sink.files()
    open_name = open_file.name
    sink.close()
    [finished] = sink.files()

    assert open_name.endswith(".jsonl.gz.partial")
    assert finished.name == open_name.removesuffix(".partial")
    expected = b"".join(encode(r) + b"\n" for batch in batches for r in batch)
    assert gzip.decompress(finished.read_bytes()) == expected


def test_gzip_rotation_finishes_the_previous_file(tmp_path):
    sink = JSONLSink(tmp_path, gzip=True, max_bytes=1)

    for n in range(3):
        sink.write([prediction(n)])

    names = [f.name for f in sink.files()]
    assert [n.endswith(".partial") for n in names] == [False, False, True]
    assert [r.data_id for r in sink.read_records()] == ["d0", "d1", "d2"]


def test_reader_skips_what_a_crash_cut_short(tmp_path):
    sink = JSONLSink(tmp_path, gzip=True)
    sink.write([prediction(1)])
    [file] = sink.files()
    whole = file.read_bytes()
    with open(file, "ab") as f:  # a second member, torn mid-write
        f.write(gzip.compress(encode(prediction(2)) + b"\n")[:-9])
    plain = JSONLSink(tmp_path / "plain")
    plain.write([prediction(3)])
    with open(plain.files()[0], "ab") as f:
        f.write(encode(prediction(4))[:20])

    assert len(file.read_bytes()) > len(whole)
    assert [r.data_id for r in sink.read_records()] == ["d1"]
    assert [r.data_id for r in plain.read_records()] == ["d3"]


def test_reader_drops_repeated_record_ids(tmp_path):
    sink = JSONLSink(tmp_path)
    batch = [prediction(1), prediction(2)]

    sink.write(batch)
    sink.write(batch)

    assert sink.read_records() == [
        Prediction(p.data_id, {**p.features, "nan": "NaN"}, p.prediction_data, T,
                   record_id=p.record_id)
        for p in batch
    ]


def test_files_and_folder_are_owner_only(tmp_path):
    sink = JSONLSink(tmp_path / "new")
    sink.write([prediction(1)])

    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE(sink.files()[0].stat().st_mode) == 0o600


def test_url_options(tmp_path):
    sink = open_sink(
        f"jsonl:///{tmp_path}?max_bytes=100&max_seconds=5&gzip=true&gzip_level=9"
    )

    assert (sink.max_bytes, sink.max_seconds, sink.gzip, sink.gzip_level) == (
        100, 5.0, True, 9,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("jsonl:///d?gzip=perhaps", "bad value for option 'gzip'"),
        ("jsonl:///d?max_seconds=-1", "max_seconds must not be negative"),
        ("jsonl:///d?max_bytes=0", "max_bytes must be positive"),
        ("jsonl:///d?gzip_level=0", "gzip_level must be 1 to 9"),
        ("jsonl:///d?rotate=daily", "unknown option 'rotate'"),
    ],
)
def test_bad_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match=message):
        open_sink(url)


def test_pickles_as_configuration(tmp_path):
    sink = JSONLSink(tmp_path, max_bytes=10, max_seconds=2, gzip=True, gzip_level=5)
    sink.write([prediction(1)])

    copy = pickle.loads(pickle.dumps(sink))

    assert (copy.path, copy.max_bytes, copy.max_seconds, copy.gzip_level) == (
        tmp_path, 10, 2.0, 5,
    )
    assert copy._fd is None


def test_forked_child_writes_a_file_of_its_own(tmp_path):
    sink = JSONLSink(tmp_path)
    sink.write([prediction(1)])

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sink.write([prediction(2)])
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    sink.write([prediction(3)])
    sink.close()

    assert os.waitstatus_to_exitcode(status) == 0
    contents = sorted(
        [orjson.loads(line)["data_id"] for line in f.read_bytes().splitlines()]
        for f in sink.files()
    )
    assert contents == [["d1", "d3"], ["d2"]]


@pytest.mark.parametrize("compress", [False, True])
def test_two_processes_never_mix_lose_or_repeat_lines(tmp_path, compress):
    ctx = multiprocessing.get_context("spawn")
    url = f"jsonl:///{tmp_path}/out?max_bytes=20000&gzip={str(compress).lower()}"
    procs = [ctx.Process(target=_write_many, args=(url, n)) for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)

    assert [p.exitcode for p in procs] == [0, 0]
    sink = JSONLSink(tmp_path / "out", gzip=compress)
    files = sink.files()
    assert len(files) > 2  # rotation happened in both
    seen = []
    for file in files:
        data = file.read_bytes()
        lines = (gzip.decompress(data) if compress else data).split(b"\n")
        assert lines[-1] == b""  # every line complete
        procs_in_file = {orjson.loads(line)["features"]["proc"] for line in lines[:-1]}
        assert len(procs_in_file) == 1
        seen += [orjson.loads(line)["features"]["i"] for line in lines[:-1]]
    assert sorted(seen) == sorted(list(range(1000)) * 2)
    assert not [f for f in files if f.name.endswith(".partial")]


def _write_many(url, n):
    from mlf_middleware import Recorder

    rec = Recorder(url, batch_size=50)
    for i in range(1000):
        rec.record({"proc": n, "i": i}, {"value": i})
    stats = rec.close(30)
    assert stats["written"] == 1000
