import subprocess
import sys

from mlf_middleware import Recorder
from mlf_middleware.cli.__main__ import main
from mlf_middleware.sinks import JSONLSink, MemorySink, SQLiteSink


class Down(MemorySink):
    name = "down"
    url = "test://down"

    def write(self, records):
        raise ConnectionError("down")


def jsonl_folder(tmp_path, n):
    rec = Recorder(f"jsonl:///{tmp_path}/src")
    ids = [rec.record({"i": i}, {"value": i}) for i in range(n)]
    rec.close(5)
    return tmp_path / "src", ids


def test_jsonl_folder_is_delivered_with_its_ids(tmp_path, capsys):
    source, _ = jsonl_folder(tmp_path, 20)
    sent = JSONLSink(source).read_records()

    code = main(["replay", str(source), "--sink", f"sqlite:///{tmp_path}/d.db"])

    stored = SQLiteSink(tmp_path / "d.db").read_records()
    assert code == 0
    assert stored == sent
    assert "delivered 20, rejected 0" in capsys.readouterr().out


def test_second_run_skips_finished_files(tmp_path, capsys):
    source, _ = jsonl_folder(tmp_path, 5)
    url = f"sqlite:///{tmp_path}/d.db"
    main(["replay", str(source), "--sink", url])
    capsys.readouterr()

    code = main(["replay", str(source), "--sink", url])

    assert code == 0
    assert "delivered 0" in capsys.readouterr().out
    assert len(SQLiteSink(tmp_path / "d.db").read_records()) == 5


def test_dead_process_spool_is_replayed_and_consumed(tmp_path):
    old = Recorder(Down(), spool_dir=tmp_path / "spool", max_delay=0.01)
    ids = [old.record({"i": i}, {"value": i}) for i in range(30)]
    assert old.close(0.3)["spooled"] == 30
    [folder] = (tmp_path / "spool").iterdir()

    code = main(["replay", str(folder), "--sink", f"sqlite:///{tmp_path}/d.db"])

    stored = SQLiteSink(tmp_path / "d.db").read_records()
    assert code == 0
    assert [r.data_id for r in stored] == ids
    assert list(folder.glob("seg-*")) == []


def test_bad_arguments_exit_2_without_traceback(tmp_path):
    for args, message in [
        (["replay", str(tmp_path / "nope"), "--sink", "memory://"], "no folder"),
        (["replay", str(tmp_path), "--sink", "nosuch://x"], "unknown sink scheme"),
        (["replay", str(tmp_path)], "--sink"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "mlf_middleware.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, args
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_progress_file_is_owner_only(tmp_path):
    import stat

    source, _ = jsonl_folder(tmp_path, 2)

    main(["replay", str(source), "--sink", f"sqlite:///{tmp_path}/d.db"])

    [progress] = source.glob(".mlf-replay-*.json")
    assert stat.S_IMODE(progress.stat().st_mode) == 0o600

