"""mlf-middleware report: exact figures per window, drift, formats, bad input."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from mlf_middleware.cli import report
from mlf_middleware.cli.__main__ import main
from mlf_middleware.cli._drift import EPSILON, Bins, histogram_pair, kind_of, psi
from mlf_middleware.cli._store import parse_when
from mlf_middleware.records import Actual, Prediction
from mlf_middleware.sinks import SQLiteSink

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
W1, W2 = "2026-01-01T10:00:00.000000Z", "2026-01-01T11:00:00.000000Z"
W3 = "2026-01-01T12:00:00.000000Z"

# Window 2 shifts both features: x from 1..10 to 6..15, red from 5 to 2 of 10.
PSI_X = math.fsum(
    [(EPSILON - 0.1) * math.log(EPSILON / 0.1)] * 5  # bins (-inf, 1.9] .. (4.6, 5.5]
    + [0.0] * 4  # (5.5, 6.4] .. (8.2, 9.1]: 6, 7, 8 and 9 in both windows
    + [(0.6 - 0.1) * math.log(0.6 / 0.1)]  # (9.1, inf): 10 .. 15
)
PSI_COLOR = math.fsum(
    [(0.8 - 0.5) * math.log(0.8 / 0.5), (0.2 - 0.5) * math.log(0.2 / 0.5)]
)


def _records(model: str = "m:1") -> list[Prediction | Actual]:
    """Two hours of 10 predictions; 8 then 10 actuals; 6 then 9 correct."""
    records: list[Prediction | Actual] = []
    latencies = ([1, 2, 3, 4, 5, 6, 7, 8, 10, 10], [2] * 10)
    for hour, first_x, reds, joined, wrong in (
        (0, 1, 5, 8, {6, 7}),
        (1, 6, 2, 10, {9}),
    ):
        for i in range(10):
            data_id = f"{model}-{hour}-{i}"
            at = T0 + timedelta(hours=hour, minutes=i)
            records.append(
                Prediction(
                    data_id,
                    {"x": first_x + i, "color": "red" if i < reds else "blue"},
                    {"value": "yes"},
                    occurred_at=at,
                    model_version_fqn=model,
                    latency_ms=latencies[hour][i],
                )
            )
            if i < joined:
                value = "no" if i in wrong else "yes"
                records.append(
                    Actual(data_id, value, at + timedelta(minutes=30), model)
                )
    return records


@pytest.fixture
def store(tmp_path):
    sink = SQLiteSink(tmp_path / "store.db")
    sink.write(_records())
    sink.close()
    return f"sqlite:///{tmp_path}/store.db"


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = report.run(list(argv), out=out)
    return code, out.getvalue()


def _json(*argv: str) -> dict:
    code, text = _run(*argv, "--format", "json")
    assert code == 0
    return json.loads(text)


def _window(start, end, joined, correct, p50, p99, drift) -> dict:
    return {
        "start": start,
        "end": end,
        "predictions": 10,
        "with_actual": joined,
        "coverage": joined / 10,
        "errors": 0,
        "scored": joined,
        "correct": correct,
        "accuracy": correct / joined,
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
        "drift": drift,
    }


def test_json_report_gives_exact_figures_per_window(store):
    result = _json("--sink", store)

    model = result["models"][0]
    histograms = model.pop("histograms")
    assert result == {
        "schema": 1,
        "window": "hour",
        "since": None,
        "until": None,
        "store": "sqlite:store.db",
        "models": [model],
    }
    assert model == {
        "model": "m:1",
        "task": "classification",
        "first": W1,
        "last": "2026-01-01T11:09:00.000000Z",
        "summary": {
            "predictions": 20,
            "with_actual": 18,
            "coverage": 0.9,
            "errors": 0,
            "scored": 18,
            "correct": 15,
            "accuracy": 15 / 18,
            "latency_ms_p50": 2,
            "latency_ms_p99": 10,
        },
        "reference": {
            "source": "first window",
            "since": W1,
            "until": W2,
            "predictions": 10,
        },
        "windows": [
            _window(W1, W2, 8, 6, 5.5, 10, {"color": 0.0, "x": 0.0}),
            _window(W2, W3, 10, 9, 2, 2, {"color": PSI_COLOR, "x": PSI_X}),
        ],
        "features": [
            {"name": "x", "kind": "numeric", "max_psi": PSI_X, "max_psi_window": W2},
            {
                "name": "color",
                "kind": "categorical",
                "max_psi": PSI_COLOR,
                "max_psi_window": W2,
            },
        ],
    }
    assert [(h["feature"], h["psi"], h["window"]) for h in histograms] == [
        ("x", PSI_X, W2),
        ("color", PSI_COLOR, W2),
    ]
    assert histograms[1] == {
        "feature": "color",
        "kind": "categorical",
        "psi": PSI_COLOR,
        "window": W2,
        "labels": ["blue", "red"],
        "ranges": None,
        "reference": [0.5, 0.5],
        "current": [0.8, 0.2],
    }


def test_psi_values_are_the_documented_ones():
    assert round(PSI_X, 4) == 4.3463
    assert round(PSI_COLOR, 4) == 0.4159


def test_text_report_lays_out_windows_and_drift(store):
    code, text = _run("--sink", store)

    lines = text.splitlines()
    assert code == 0
    assert lines[:4] == [
        "model m:1 (classification), store sqlite:store.db",
        "20 predictions from 2026-01-01 10:00:00 to 2026-01-01 11:09:00 UTC",
        "18 with an actual (90.0%), accuracy 0.8333 (15 of 18)",
        "latency p50 2.00 ms, p99 10.0 ms, 0 failed predictions",
    ]
    assert lines[5:9] == [
        "window (UTC)      predictions  with actual  coverage  accuracy  p50 ms"
        "  p99 ms  failed  most drifted",
        "----------------  -----------  -----------  --------  --------  ------"
        "  ------  ------  ------------",
        "2026-01-01 10:00           10            8     80.0%    0.7500    5.50"
        "    10.0       0  (reference)",
        "2026-01-01 11:00           10           10    100.0%    0.9000    2.00"
        "    2.00       0  x 4.346",
    ]
    assert lines[10:] == [
        "drift (PSI) against the first window (2026-01-01 10:00 to "
        "2026-01-01 11:00 UTC, 10 predictions)",
        "below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 major",
        "feature  kind         latest    max  max in window     status",
        "-------  -----------  ------  -----  ----------------  ------",
        "x        numeric       4.346  4.346  2026-01-01 11:00  major",
        "color    categorical   0.416  0.416  2026-01-01 11:00  major",
    ]


def test_reference_range_replaces_the_first_window(store):
    result = _json("--sink", store, "--reference-since", W2, "--reference-until", W3)

    model = result["models"][0]
    assert model["reference"] == {
        "source": "range",
        "since": W2,
        "until": W3,
        "predictions": 10,
    }
    assert model["windows"][1]["drift"] == {"color": 0.0, "x": 0.0}
    assert model["windows"][0]["drift"]["color"] == PSI_COLOR


def test_empty_reference_range_leaves_drift_out(store):
    code, text = _run(
        "--sink",
        store,
        "--reference-since",
        "2025-01-01",
        "--reference-until",
        "2025-01-02",
    )
    result = _json(
        "--sink",
        store,
        "--reference-since",
        "2025-01-01",
        "--reference-until",
        "2025-01-02",
    )

    model = result["models"][0]
    assert code == 0
    assert "drift: the reference range holds no predictions of this model" in text
    assert model["reference"]["predictions"] == 0
    assert [w["drift"] for w in model["windows"]] == [
        {"color": None, "x": None},
        {"color": None, "x": None},
    ]
    assert model["histograms"] == []


def test_day_window_and_range_filter(store):
    day = _json("--sink", store, "--window", "day")
    second_hour = _json("--sink", store, "--since", W2, "--until", W3)

    assert [(w["start"], w["predictions"]) for w in day["models"][0]["windows"]] == [
        ("2026-01-01T00:00:00.000000Z", 20)
    ]
    assert second_hour["since"] == W2
    assert second_hour["models"][0]["summary"]["predictions"] == 10


def test_each_model_gets_its_own_section(tmp_path):
    sink = SQLiteSink(tmp_path / "two.db")
    sink.write(_records("b:1") + _records("a:2"))
    sink.close()
    url = f"sqlite:///{tmp_path}/two.db"

    both = _json("--sink", url)
    one = _json("--sink", url, "--model", "b:1")

    assert [m["model"] for m in both["models"]] == ["a:2", "b:1"]
    assert [m["model"] for m in one["models"]] == ["b:1"]
    assert one["models"][0]["summary"]["predictions"] == 20


def test_failed_predictions_are_counted_not_scored(tmp_path):
    sink = SQLiteSink(tmp_path / "e.db")
    sink.write(
        [
            Prediction("a", {"x": 1}, {"value": "yes"}, occurred_at=T0),
            Prediction(
                "b", {"x": 2}, {"value": None, "error": "ValueError"}, occurred_at=T0
            ),
            Actual("a", "yes", T0),
            Actual("b", "no", T0),
        ]
    )
    sink.close()

    summary = _json("--sink", f"sqlite:///{tmp_path}/e.db")["models"][0]["summary"]

    assert summary["errors"] == 1
    assert (summary["with_actual"], summary["scored"], summary["accuracy"]) == (
        2,
        1,
        1.0,
    )


def test_numbers_get_mae_and_rmse():
    rows = [
        _row(T0, {"x": 1}, 1.5, 1),
        _row(T0, {"x": 2}, 2.5, 3),
        _row(T0, {"x": 3}, 4.0, 1.0),
    ]

    figures = report.summarize(rows)

    assert report.resolve_task(rows) == "regression"
    assert figures["mae"] == (0.5 + 0.5 + 3.0) / 3
    assert figures["rmse"] == math.sqrt((0.25 + 0.25 + 9.0) / 3)
    assert "accuracy" not in figures


def test_whole_numbers_are_labels_unless_told():
    rows = [_row(T0, {}, 1, 1), _row(T0, {}, 0, 1)]

    assert report.summarize(rows)["accuracy"] == 0.5
    assert report.summarize(rows, "regression")["mae"] == 0.5


def _row(at, features, predicted, actual) -> dict:
    return {
        "record_id": f"r{id(features)}",
        "data_id": "d",
        "model_version_fqn": "m",
        "occurred_at": at,
        "features": features,
        "prediction_data": {"value": predicted},
        "raw_data": None,
        "latency_ms": None,
        "actual": None if actual is None else {"value": actual, "occurred_at": at},
    }


def test_quantile_bins_merge_repeated_cut_points():
    bins = Bins.from_reference("numeric", [0] * 10 + [1] * 10 + [2] * 10)

    assert bins.cuts == (0.0, 1.0, 2.0)
    assert bins.labels() == ["<= 0", "(0, 1]", "(1, 2]", "> 2", "(missing)"]
    assert bins.shares([0, 1, 2, 3, None]) == [0.2] * 5


def test_categories_beyond_the_top_twenty_are_other():
    reference = [f"c{i:02}" for i in range(25)] + ["c24"]
    bins = Bins.from_reference("categorical", reference)

    assert bins.categories[0] == "c24"
    assert len(bins.categories) == 20
    assert bins.index("c23") == 20  # (other)
    assert bins.index(None) == 21  # (missing)


def test_feature_kinds_and_missing_values():
    assert kind_of([1, 2.5, None, "NaN", "Infinity"]) == "numeric"
    assert kind_of([1, "2"]) == "categorical"
    assert kind_of([True, False]) == "categorical"
    assert kind_of([None]) == "categorical"


def test_psi_of_identical_shares_is_zero():
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0


def test_histogram_pair_uses_equal_width_bins():
    bins = Bins.from_reference("numeric", [0, 1])

    pair = histogram_pair(bins, [0, 0, 10, None], [5, 10])

    assert pair["labels"][0] == "0 to 0.5"
    assert pair["labels"][-1] == "(missing)"
    assert pair["ranges"][0] == [0.0, 0.5]
    assert pair["reference"] == [0.5, 0.0, 0.25, 0.25]
    assert pair["current"] == [0.0, 0.5, 0.5, 0.0]


def test_non_finite_figures_are_strict_json():
    text = report.to_json({"mae": math.inf, "rmse": math.nan, "x": [-math.inf]})

    assert json.loads(text) == {"mae": "Infinity", "rmse": "NaN", "x": ["-Infinity"]}


def test_since_takes_dates_times_and_spans():
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)

    assert parse_when("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_when("2026-01-31T12:00+02:00") == datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert parse_when("24h", now=lambda: now) == datetime(2026, 4, 30, 12, tzinfo=UTC)
    assert parse_when("7d", now=lambda: now) == datetime(2026, 4, 24, 12, tzinfo=UTC)


def test_html_report_is_written_beside_the_text(store, tmp_path, capsys):
    code, text = _run("--sink", store, "--html", str(tmp_path / "r.html"))

    page = (tmp_path / "r.html").read_text()
    assert code == 0
    assert text.startswith("model m:1")
    assert page.count('<svg class="chart"') == 6  # 4 charts, 2 histogram pairs
    assert (tmp_path / "r.html").stat().st_mode & 0o777 == 0o600
    assert f"HTML report: {tmp_path / 'r.html'}" in capsys.readouterr().err


# -- empty stores and bad input ---------------------------------------------------


def test_empty_store_says_so(tmp_path):
    sink = SQLiteSink(tmp_path / "empty.db")
    sink.write([])
    sink.close()

    code, text = _run("--sink", f"sqlite:///{tmp_path}/empty.db")

    assert code == 0
    assert text == "the store sqlite:empty.db holds no predictions yet\n"


def test_empty_store_still_writes_an_html_page(tmp_path):
    sink = SQLiteSink(tmp_path / "empty.db")
    sink.write([])
    sink.close()

    code, _ = _run(
        "--sink", f"sqlite:///{tmp_path}/empty.db", "--html", str(tmp_path / "e.html")
    )

    assert code == 0
    assert (
        '<p class="empty">the store sqlite:empty.db holds no predictions yet</p>'
        in (tmp_path / "e.html").read_text()
    )


def test_empty_range_says_so_and_json_stays_valid(store, capsys):
    code, text = _run("--sink", store, "--since", "2027-01-01", "--format", "json")

    assert code == 0
    assert json.loads(text)["models"] == []
    assert capsys.readouterr().err == (
        "no predictions from 2027-01-01T00:00:00.000000Z until now\n"
    )


def test_known_model_with_nothing_in_range_is_not_an_error(store):
    code, text = _run("--sink", store, "--model", "m:1", "--until", "2025-06-01")

    assert code == 0
    assert text == (
        "no predictions from the start until 2025-06-01T00:00:00.000000Z "
        "for model 'm:1'\n"
    )


def test_unknown_model_exits_2_naming_it(store, capsys):
    code, text = _run("--sink", store, "--model", "nope:1")

    assert code == 2
    assert text == ""
    assert capsys.readouterr().err == (
        "mlf-middleware report: --model: no predictions of model 'nope:1' in "
        "this store (it holds: m:1)\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--since", "yesterday"],
            "argument --since: 'yesterday' is not an ISO 8601 date or time",
        ),
        (["--until", "2026-13-01"], "argument --until: '2026-13-01' is not an ISO"),
        (["--window", "week"], "argument --window: invalid choice: 'week'"),
        (
            ["--since", "2026-02-01", "--until", "2026-01-01"],
            "--since must be earlier than --until",
        ),
    ],
)
def test_bad_arguments_exit_2_naming_them(store, capsys, argv, message):
    try:
        code = report.run(["--sink", store, *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code

    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch:///x.db", "--sink: unknown sink scheme 'nosuch'"),
        ("sqlite:///missing.db", "--sink: no store at "),
        ("jsonl:///folder", "--sink: jsonl is not a store that can be read back"),
        ("not a url", "--sink: sink URL must look like scheme://"),
    ],
)
def test_bad_sink_exits_2_naming_it(capsys, url, message):
    code, _ = _run("--sink", url)

    assert code == 2
    assert message in capsys.readouterr().err


def test_unreadable_file_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "junk.db").write_bytes(b"this is not a database, just text " * 200)
    (tmp_path / "folder.db").mkdir()

    junk, _ = _run("--sink", f"sqlite:///{tmp_path}/junk.db")
    junk_err = capsys.readouterr().err
    folder, _ = _run("--sink", f"sqlite:///{tmp_path}/folder.db")
    folder_err = capsys.readouterr().err

    assert (junk, folder) == (2, 2)
    assert junk_err == (
        "mlf-middleware report: --sink: sqlite sink: "
        f"{tmp_path}/junk.db is not a SQLite database\n"
    )
    assert folder_err == (
        "mlf-middleware report: --sink: sqlite sink: "
        f"{tmp_path}/folder.db is a folder, not a file\n"
    )


def test_unwritable_html_exits_2_naming_it(store, tmp_path, capsys):
    target = tmp_path / "no" / "such" / "folder" / "r.html"

    code, _ = _run("--sink", store, "--html", str(target))

    assert code == 2
    assert capsys.readouterr().err == (
        f"mlf-middleware report: --html: cannot write {target}: "
        "No such file or directory\n"
    )


def test_command_line_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlf_middleware.cli",
            "report",
            "--sink",
            f"sqlite:///{tmp_path}/absent.db",
            "--since",
            "soon",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument --since: 'soon' is not an ISO 8601 date or time" in result.stderr


def test_main_dispatches_report(store, capsys):
    code = main(["report", "--sink", store, "--format", "json"])

    assert code == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["model"] == "m:1"


def test_summarize_keeps_its_flat_shape():
    figures = report.summarize([_row(T0, {}, "a", "a"), _row(T0, {}, "b", None)])

    assert figures == {
        "predictions": 2,
        "with_actual": 1,
        "coverage": 0.5,
        "errors": 0,
        "scored": 1,
        "correct": 1,
        "accuracy": 1.0,
        "latency_ms_p50": None,
        "latency_ms_p99": None,
    }
    assert report.format_text({"predictions": 2, "coverage": 0.5}) == (
        "predictions  2\ncoverage     0.5000"
    )
