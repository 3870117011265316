import os
import signal
import stat
import subprocess
import sys
import textwrap

import orjson

from mlf_middleware import Recorder
from mlf_middleware.sinks import MemorySink
from mlf_middleware.spool import Spool


def lines(n, start=0):
    return [orjson.dumps({"i": i}) for i in range(start, start + n)]


def test_records_come_back_in_order(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=64)

    spool.append(lines(10))
    spool.append(lines(5, start=10))
    got = []
    while batch := spool.peek(4):
        got.extend(orjson.loads(x)["i"] for x in batch)
        spool.consume(len(batch))

    assert got == list(range(15))
    assert len(spool) == 0


def test_size_cap_refuses_what_does_not_fit(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=30)

    stored = spool.append(lines(10))

    assert stored == 3  # {"i":0}\n is 8 bytes
    assert len(spool) == 3


def test_spool_files_are_owner_only(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.append(lines(1))

    [segment] = (tmp_path / "s").glob("seg-*.jsonl")
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700


def test_live_owner_keeps_its_segments(tmp_path):
    first = Spool(tmp_path / "s", max_bytes=1 << 20)
    first.append(lines(3))

    second = Spool(tmp_path / "s", max_bytes=1 << 20)

    assert second.adopted == 0
    first.close()
    third = Spool(tmp_path / "s", max_bytes=1 << 20)
    assert third.adopted == 3
    assert [orjson.loads(x)["i"] for x in third.peek(10)] == [0, 1, 2]


def test_torn_line_is_counted_not_delivered(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    (folder / "seg-1-1-000001.jsonl").write_bytes(b'{"i":0}\n{"i":1}\n{"i":')

    spool = Spool(folder, max_bytes=1 << 20)

    assert (spool.adopted, spool.corrupt) == (2, 1)


class Down(MemorySink):
    name = "target"
    url = "test://target"

    def write(self, records):
        raise ConnectionError("down")


class Target(MemorySink):
    name = "target"
    url = "test://target"


def test_new_recorder_delivers_what_a_closed_one_spooled(tmp_path):
    old = Recorder(Down(), max_delay=0.01)
    ids = [old.record({"i": i}, {"value": i}) for i in range(50)]
    stats = old.close(timeout=0.5)
    assert stats["spooled"] == 50

    sink = Target()
    new = Recorder(sink)
    assert new.flush(5)
    final = new.close(5)

    assert [r.data_id for r in sink.records] == ids
    assert final["written"] == 50
    assert final["spooled"] == 0


CHILD = textwrap.dedent(
    """
    import sys
    from mlf_middleware import Recorder
    from mlf_middleware.sinks import MemorySink

    class Down(MemorySink):
        name = "target"
        url = "test://target"
        def write(self, records):
            raise ConnectionError("down")

    rec = Recorder(Down(), max_delay=0.001, batch_size=16)
    i = 0
    while True:
        rec.record({"i": i}, {"value": i})
        i += 1
        if i % 100 == 0:
            while rec.stats()["spooled"] < i:
                pass
            print(i, flush=True)
    """
)


def test_records_spooled_before_sigkill_are_delivered(tmp_path):
    env = {**os.environ, "MLF_SPOOL_DIR": str(tmp_path / "spool")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, env=env, text=True
    )
    reported = 0
    try:
        for line in child.stdout:
            reported = int(line)
            if reported >= 1000:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert reported >= 1000

    sink = Target()
    rec = Recorder(sink, spool_dir=tmp_path / "spool")
    assert rec.flush(10)
    rec.close(5)

    values = [r.features["i"] for r in sink.records]
    assert values[:reported] == list(range(reported))
    assert len(set(r.record_id for r in sink.records)) == len(values)


def test_missing_parent_folders_are_made_owner_only(tmp_path):
    Spool(tmp_path / "a" / "b" / "c", max_bytes=1 << 20)

    modes = [
        stat.S_IMODE((tmp_path / p).stat().st_mode) for p in ("a", "a/b", "a/b/c")
    ]
    assert modes == [0o700, 0o700, 0o700]


def test_a_record_longer_than_a_read_chunk_comes_back(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=1 << 24)
    big = orjson.dumps({"x": "y" * (3 * 1024 * 1024)})

    spool.append([big, orjson.dumps({"i": 1})])

    assert spool.peek(5) == [big, orjson.dumps({"i": 1})]


def test_adopted_segment_skips_a_corrupt_middle_line(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    (folder / "seg-1-1-000001.jsonl").write_bytes(b'{"i":0}\n{"i":\n{"i":2}\n')

    spool = Spool(folder, max_bytes=1 << 20)

    assert (spool.adopted, spool.corrupt) == (2, 1)
    assert [orjson.loads(x)["i"] for x in spool.peek(10)] == [0, 2]
