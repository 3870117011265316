"""mlf-middleware tail: the latest predictions, then new ones as they arrive."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from mlf_middleware import Recorder
from mlf_middleware.cli import tail
from mlf_middleware.cli.__main__ import main

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
WAIT = 10.0  # seconds: a bound on waits that normally end in milliseconds


class Lines(io.StringIO):
    """An output that sets ``ready`` once it holds ``wanted`` lines."""

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.wanted = wanted
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("\n") >= self.wanted:
            self.ready.set()
        return written


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/tail.db"


@pytest.fixture
def recorder(url):
    rec = Recorder(url, model_version_fqn="m:1")
    yield rec
    rec.close(timeout=5)


def _predict(rec: Recorder, i: int, *, model: str | None = None) -> None:
    rec.record(
        {"x": i},
        {"value": "yes", "probabilities": {"yes": 0.75, "no": 0.25}},
        data_id=f"d{i}",
        occurred_at=T0 + timedelta(minutes=i),
        latency_ms=1.5,
        model_version_fqn=model,
    )


def _line(i: int, actual: str | None = None, model: str = "m:1") -> str:
    line = (
        f'2026-01-01T10:{i:02}:00.000000Z  prediction  {model}  d{i}  "yes" (p=0.750)'
    )
    return line + (f'  actual "{actual}"' if actual else "") + "  1.50 ms"


def _run(*argv: str, out: io.StringIO | None = None) -> tuple[int, str]:
    out = out if out is not None else io.StringIO()
    code = tail.run(list(argv), out=out)
    return code, out.getvalue()


def test_backlog_prints_the_latest_predictions(recorder, url):
    for i in range(5):
        _predict(recorder, i)
    recorder.record_actual("d4", "no", occurred_at=T0 + timedelta(hours=1))
    assert recorder.flush(WAIT)

    code, text = _run("--sink", url, "-n", "3", "--limit", "3")

    assert code == 0
    assert text.splitlines() == [_line(2), _line(3), _line(4, actual="no")]


def test_follows_new_predictions_and_late_actuals(recorder, url):
    for i in range(2):
        _predict(recorder, i)
    assert recorder.flush(WAIT)
    out, stop = Lines(2), threading.Event()
    result: list[int] = []
    follower = threading.Thread(
        target=lambda: result.append(
            tail.run(
                ["--sink", url, "-n", "2", "--limit", "5", "--interval", "0.01"],
                out=out,
                stop=stop,
            )
        )
    )
    follower.start()
    try:
        assert out.ready.wait(WAIT)
        _predict(recorder, 2)
        _predict(recorder, 3)
        recorder.record_actual("d0", "no", occurred_at=T0 + timedelta(hours=1))
        assert recorder.flush(WAIT)
        follower.join(WAIT)
    finally:
        stop.set()
        follower.join(WAIT)

    lines = out.getvalue().splitlines()
    assert result == [0]
    assert lines[:2] == [_line(0), _line(1)]
    assert sorted(lines[2:]) == sorted(
        [
            _line(2),
            _line(3),
            '2026-01-01T11:00:00.000000Z  actual      m:1  d0  "no"  (predicted "yes")',
        ]
    )


def test_model_option_shows_only_that_model(recorder, url):
    _predict(recorder, 0)
    _predict(recorder, 1, model="other:1")
    assert recorder.flush(WAIT)

    code, text = _run("--sink", url, "--model", "other:1", "--limit", "1", "-n", "5")

    assert code == 0
    assert text.splitlines() == [_line(1, model="other:1")]


def test_json_lines_carry_the_whole_row(recorder, url):
    _predict(recorder, 0)
    assert recorder.flush(WAIT)

    code, text = _run("--sink", url, "--format", "json", "--limit", "1")

    row = json.loads(text)
    assert code == 0
    assert row == {
        "event": "prediction",
        "record_id": row["record_id"],
        "data_id": "d0",
        "model_version_fqn": "m:1",
        "occurred_at": "2026-01-01T10:00:00.000000Z",
        "features": {"x": 0},
        "prediction_data": {"value": "yes", "probabilities": {"yes": 0.75, "no": 0.25}},
        "raw_data": None,
        "latency_ms": 1.5,
        "actual": None,
    }


class FakeStore:
    """A store whose rows the test edits; ``joined`` filters by start."""

    name = "fake"

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def joined(self, model=None, start=None, end=None):
        return [r for r in self.rows if start is None or r["occurred_at"] >= start]

    def add(self, rid: str, minute: int, actual: str | None = None) -> dict:
        row = {
            "record_id": rid,
            "data_id": rid,
            "model_version_fqn": "m",
            "occurred_at": T0 + timedelta(minutes=minute),
            "features": {},
            "prediction_data": {"value": 1},
            "raw_data": None,
            "latency_ms": None,
            "actual": None,
        }
        self.rows.append(row)
        return row


def test_follower_reports_each_record_once_within_lookback():
    store, now = FakeStore(), [T0 + timedelta(minutes=10)]
    first = store.add("a", 9)
    follower = tail.Follower(store, lookback=timedelta(minutes=2), clock=lambda: now[0])

    backlog = follower.backlog(5)
    store.add("b", 10)
    store.add("late", 5)  # reached the store long after it happened
    first["actual"] = {"record_id": "x", "value": 2, "occurred_at": T0}
    events = follower.poll()
    again = follower.poll()

    assert [(k, r["record_id"]) for k, r in backlog] == [("prediction", "a")]
    assert [(k, r["record_id"]) for k, r in events] == [
        ("actual", "a"),
        ("prediction", "b"),
    ]
    assert again == []
    assert set(follower.seen) == {"a", "b"}


def test_follower_forgets_records_older_than_lookback():
    store, now = FakeStore(), [T0]
    store.add("a", 0)
    follower = tail.Follower(store, lookback=timedelta(minutes=1), clock=lambda: now[0])
    follower.backlog(0)

    store.add("b", 30)
    now[0] = T0 + timedelta(minutes=30)
    events = follower.poll()
    follower.poll()

    assert [r["record_id"] for _, r in events] == ["b"]
    assert set(follower.seen) == {"b"}


def test_main_dispatches_tail(recorder, url, capsys):
    _predict(recorder, 0)
    assert recorder.flush(WAIT)

    code = main(["tail", "--sink", url, "--limit", "1"])

    assert code == 0
    assert capsys.readouterr().out == _line(0) + "\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--limit", "-1"], "argument --limit: '-1' is not a whole number >= 0"),
        (["--lines", "many"], "argument -n/--lines: 'many' is not a whole number"),
        (["--interval", "0"], "argument --interval: '0' is not a number of seconds"),
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_bad_options_exit_2_naming_them(url, capsys, argv, message):
    try:
        code = tail.run(["--sink", url, *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code

    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch:///x.db", "--sink: unknown sink scheme 'nosuch'"),
        ("sqlite:///missing.db", "--sink: no store at "),
        ("stdout://", "--sink: stdout is not a store that can be read back"),
    ],
)
def test_bad_sink_exits_2_naming_it(capsys, url, message):
    code, text = _run("--sink", url, "--limit", "1")

    assert code == 2
    assert text == ""
    assert capsys.readouterr().err.startswith(f"mlf-middleware tail: {message}")
