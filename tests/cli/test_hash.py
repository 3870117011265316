"""``mlf-middleware hash``: ids of JSON objects on stdin, exit 2 on bad input."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from mlf_middleware.cli import hash as hash_command

SPEC_ID = "e4ff3f12e57e53cab6f6281c58393b6b"


@pytest.fixture
def stdin(monkeypatch):
    def feed(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return feed


def test_one_object_prints_its_id(stdin, capsys):
    stdin('{"feature1": 3.33, "feature2": "class1"}\n')

    code = hash_command.run([])

    assert code == 0
    assert capsys.readouterr().out == SPEC_ID + "\n"


def test_pretty_printed_object_is_one_input(stdin, capsys):
    stdin('{\n  "feature1": 3.33,\n  "feature2": "class1"\n}\n')

    assert hash_command.run([]) == 0
    assert capsys.readouterr().out == SPEC_ID + "\n"


def test_json_lines_print_one_id_each_in_order(stdin, capsys):
    stdin('{"x": 1}\n\n{"b": 2, "a": 1}\n{"x": 1.0}\n')

    code = hash_command.run([])

    assert code == 0
    assert capsys.readouterr().out == (
        "7ed41a8229ef5bd787fd6f8d390e9df9\n"
        "55bebe480aaa502abcba2eca200d89f0\n"
        "7ed41a8229ef5bd787fd6f8d390e9df9\n"
    )


@pytest.mark.parametrize(
    "timestamp",
    ["2024-01-01T12:00:00Z", "2024-01-01T12:00:00", "2024-01-01T17:30:00+05:30"],
)
def test_timestamp_option_is_part_of_the_id(stdin, capsys, timestamp):
    stdin('{"x": 1}')

    code = hash_command.run(["--timestamp", timestamp])

    assert code == 0
    assert capsys.readouterr().out == "1c33697db4895e02af51281819c6f3f9\n"


def test_mlfoundry_scheme(stdin, capsys):
    stdin('{"x": 1}\n{"x": 1.0}\n')

    code = hash_command.run(["--scheme", "mlfoundry"])

    assert code == 0
    assert capsys.readouterr().out == (
        "9cd4b31d4d63568db6981910dac299a4\n65868f18b01950599be6b7956ac8b691\n"
    )


def test_text_option_prints_the_hashed_text(stdin, capsys):
    stdin('{"b": [1.0, 2.5], "a": "x"}')

    code = hash_command.run(["--text", "--timestamp", "2024-01-01T12:00:00Z"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.endswith('\t{"a":"x","b":[1,2.5]}|2024-01-01T12:00:00.000000Z\n')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no input"),
        ("  \n", "no input"),
        ("[1, 2]", "input: expected a JSON object, got an array"),
        ('"text"', "input: expected a JSON object, got a string"),
        ("3", "input: expected a JSON object, got a number"),
        ("null", "input: expected a JSON object, got null"),
        ('{"x": 1}\n[1]\n', "line 2: expected a JSON object, got an array"),
        ('{"x": 1}\n{"x": \n', "line 2: not valid JSON"),
        ('{"x": 1', "line 1: not valid JSON"),
        ("[" * 100_000, "nested too deeply"),
        ('{"x": 1}\n{"\\ud800": 1, "\\ufffd": 2}\n', "line 2: keys"),
        ('{"a": ' * 300 + "1" + "}" * 300, "input: nesting deeper than"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(stdin, capsys, text, message):
    stdin(text)

    code = hash_command.run([])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert message in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scheme", "md5"], "--scheme"),
        (["--timestamp", "yesterday"], "--timestamp"),
        (["--timestamp"], "--timestamp"),
        (["--text", "--scheme", "mlfoundry"], "--text"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(stdin, capsys, argv, message):
    stdin('{"x": 1}')

    code = hash_command.run(argv)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_help_exits_0(capsys):
    assert hash_command.run(["--help"]) == 0
    assert "--timestamp" in capsys.readouterr().out


def test_command_line_entry_point_prints_the_spec_id():
    result = subprocess.run(
        [sys.executable, "-m", "mlf_middleware.cli", "hash"],
        input='{"feature1": 3.33, "feature2": "class1"}\n',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == SPEC_ID + "\n"


def test_command_line_entry_point_exits_2_on_bad_input():
    result = subprocess.run(
        [sys.executable, "-m", "mlf_middleware.cli", "hash"],
        input="[1, 2]\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "expected a JSON object" in result.stderr
    assert "Traceback" not in result.stderr
