import subprocess
import sys

import pytest

from mlf_middleware.cli._common import terminal_safe


def test_terminal_escapes_from_clients_are_shown_not_sent():
    assert terminal_safe("a\x1b[31m\x9b\tb\n") == "a\\x1b[31m\\x9b\tb\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--sink", "sqlite:///x.db", "--since", "99999999d"], "year 1"),
        (["tail", "--sink", "sqlite:///x.db", "--interval", "inf"], "--interval"),
        (["tail", "--sink", "sqlite:///x.db", "--lookback", "1e20"], "--lookback"),
        (["replay", ".", "--sink", "memory://", "--timeout", "nan"], "--timeout"),
        (["replay", ".", "--sink", "memory://", "--timeout", "-1"], "--timeout"),
    ],
)
def test_out_of_range_numbers_exit_2_naming_the_option(args, message):
    done = subprocess.run(
        [sys.executable, "-m", "mlf_middleware.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_replay_into_its_own_folder_is_refused(tmp_path):
    from mlf_middleware import Recorder
    from mlf_middleware.cli.__main__ import main

    rec = Recorder(f"jsonl:///{tmp_path}/jl")
    rec.record({"a": 1}, {"value": 1})
    rec.close(5)

    assert (
        main(["replay", str(tmp_path / "jl"), "--sink", f"jsonl:///{tmp_path}/jl"]) == 2
    )


def test_report_on_a_missing_parquet_folder_exits_2(tmp_path, capsys):
    from mlf_middleware.cli.__main__ import main

    code = main(["report", "--sink", f"parquet:///{tmp_path}/nope"])

    assert code == 2
    assert "no store at" in capsys.readouterr().err
