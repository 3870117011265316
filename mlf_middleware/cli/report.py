"""``mlf-middleware report``: how is the model doing, read from a store.

Per model and per window (hour or day, UTC): predictions, how many have an
actual (coverage), accuracy for labels or MAE and RMSE for numbers, latency
p50 and p99, and each feature's drift (PSI) against a reference window.
"""

from __future__ import annotations

import math
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson

from .._files import open_private, refuse_symlink
from ..exceptions import ConfigError
from ._common import Parser
from ._drift import Bins, histogram_pair, kind_of, percentile, psi
from ._store import (
    UsageError,
    format_when,
    open_store,
    parse_when,
    read_rows,
    silence_stdout,
)
from ._tables import format_report, format_text

__all__ = [
    "build_report",
    "format_report",
    "format_text",
    "percentile",
    "resolve_task",
    "run",
    "summarize",
    "window_start",
]

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
TASKS = ("auto", "classification", "regression")
HISTOGRAMS = 4  # histogram pairs kept for the most drifted features


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pairs(rows: Iterable[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """(predicted, actual) of the rows that have an actual and no error."""
    return [
        (row["prediction_data"].get("value"), row["actual"]["value"])
        for row in rows
        if row["actual"] is not None and not row["prediction_data"].get("error")
    ]


def resolve_task(rows: Iterable[dict[str, Any]], task: str = "auto") -> str:
    """``classification`` or ``regression``; ``auto`` guesses from the values.

    Numbers with a fractional part on either side make a regression; whole
    numbers (0/1 classes), strings and booleans are labels.
    """
    if task != "auto":
        return task
    pairs = _pairs(rows)
    numeric = bool(pairs) and all(_is_number(p) and _is_number(a) for p, a in pairs)
    fractional = any(
        isinstance(v, float) and not v.is_integer() for pair in pairs for v in pair
    )

    return "regression" if numeric and fractional else "classification"


def _quality(pairs: list[tuple[Any, Any]], task: str) -> dict[str, Any]:
    if task == "regression":
        errors = [
            float(p) - float(a) for p, a in pairs if _is_number(p) and _is_number(a)
        ]
        if not errors:
            return {"scored": 0, "mae": None, "rmse": None}
        return {
            "scored": len(errors),
            "mae": math.fsum(abs(e) for e in errors) / len(errors),
            "rmse": math.sqrt(math.fsum(e * e for e in errors) / len(errors)),
        }
    correct = sum(1 for p, a in pairs if p == a)

    return {
        "scored": len(pairs),
        "correct": correct,
        "accuracy": correct / len(pairs) if pairs else None,
    }


def summarize(rows: Iterable[dict[str, Any]], task: str = "auto") -> dict[str, Any]:
    """Figures over joined rows (as a store's ``joined()`` returns them).

    Predictions that failed (``prediction_data["error"]``) are counted in
    ``errors`` and left out of accuracy and error figures.
    """
    rows = list(rows)
    task = resolve_task(rows, task)
    joined = sum(1 for row in rows if row["actual"] is not None)
    latencies = [row["latency_ms"] for row in rows if row["latency_ms"] is not None]

    return {
        "predictions": len(rows),
        "with_actual": joined,
        "coverage": joined / len(rows) if rows else None,
        "errors": sum(1 for row in rows if row["prediction_data"].get("error")),
        **_quality(_pairs(rows), task),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p99": percentile(latencies, 99),
    }


def window_start(when: datetime, window: str) -> datetime:
    """The start of the UTC hour or day that holds ``when``."""
    start = _utc(when).replace(minute=0, second=0, microsecond=0)
    if window == "day":
        start = start.replace(hour=0)

    return start


def _windows(
    rows: list[dict[str, Any]], window: str
) -> list[tuple[datetime, list[dict[str, Any]]]]:
    groups: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[window_start(_utc(row["occurred_at"]), window)].append(row)

    return sorted(groups.items())


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _values(rows: Sequence[dict[str, Any]], name: str) -> list[Any]:
    return [(row["features"] or {}).get(name) for row in rows]


def _drift(
    reference: list[dict[str, Any]],
    windows: list[tuple[datetime, list[dict[str, Any]]]],
) -> tuple[list[dict[str, Any]], list[dict[str, float | None]], list[dict]]:
    """Per feature: kind and worst PSI; per window: PSI by feature; histograms."""
    rows = [row for _, group in windows for row in group]
    names = sorted({n for row in [*reference, *rows] for n in row["features"] or {}})
    features, by_window = [], [{} for _ in windows]
    pairs: list[dict[str, Any]] = []
    for name in names:
        ref_values = _values(reference, name)
        kind = kind_of([*ref_values, *_values(rows, name)])
        bins = Bins.from_reference(kind, ref_values)
        ref_shares = bins.shares(ref_values)
        worst: tuple[float, int] | None = None
        for i, (_, group) in enumerate(windows):
            value = (
                psi(ref_shares, bins.shares(_values(group, name)))
                if (reference)
                else None
            )
            by_window[i][name] = value
            if value is not None and (worst is None or value >= worst[0]):
                worst = (value, i)
        features.append(_feature(name, kind, worst, windows))
        if worst is not None:
            current = _values(windows[worst[1]][1], name)
            pairs.append(
                {
                    "feature": name,
                    "kind": kind,
                    "psi": worst[0],
                    "window": format_when(windows[worst[1]][0]),
                    **histogram_pair(bins, ref_values, current),
                }
            )
    features.sort(key=lambda f: (-(f["max_psi"] or 0.0), f["name"]))
    pairs.sort(key=lambda p: (-p["psi"], p["feature"]))

    return features, by_window, pairs[:HISTOGRAMS]


def _feature(
    name: str,
    kind: str,
    worst: tuple[float, int] | None,
    windows: list[tuple[datetime, list[dict[str, Any]]]],
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "max_psi": None if worst is None else worst[0],
        "max_psi_window": None if worst is None else format_when(windows[worst[1]][0]),
    }


def _model_report(
    model: str | None,
    rows: list[dict[str, Any]],
    reference: list[dict[str, Any]] | None,
    reference_range: tuple[datetime | None, datetime | None],
    window: str,
    task: str,
) -> dict[str, Any]:
    task = resolve_task(rows, task)
    windows = _windows(rows, window)
    if reference is None:
        first, reference = windows[0][0], windows[0][1]
        ref_info = {
            "source": "first window",
            "since": format_when(first),
            "until": format_when(first + WINDOWS[window]),
        }
    else:
        since, until = reference_range
        ref_info = {
            "source": "range",
            "since": since and format_when(since),
            "until": until and format_when(until),
        }
    ref_info["predictions"] = len(reference)
    features, drift, histograms = _drift(reference, windows)

    return {
        "model": model,
        "task": task,
        "first": format_when(_utc(rows[0]["occurred_at"])),
        "last": format_when(_utc(rows[-1]["occurred_at"])),
        "summary": summarize(rows, task),
        "reference": ref_info,
        "windows": [
            {
                "start": format_when(start),
                "end": format_when(start + WINDOWS[window]),
                **summarize(group, task),
                "drift": drift[i],
            }
            for i, (start, group) in enumerate(windows)
        ],
        "features": features,
        "histograms": histograms,
    }


def _by_model(rows: Iterable[dict[str, Any]]) -> dict[str | None, list[dict]]:
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["model_version_fqn"]].append(row)
    return groups


def build_report(
    rows: Iterable[dict[str, Any]],
    *,
    window: str = "hour",
    reference_rows: Iterable[dict[str, Any]] | None = None,
    reference_range: tuple[datetime | None, datetime | None] = (None, None),
    since: datetime | None = None,
    until: datetime | None = None,
    task: str = "auto",
) -> dict[str, Any]:
    """The whole report over joined rows, one section per model.

    ``reference_rows`` (read from ``reference_range``) is what drift is
    measured against; None means each model's first window.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}")
    groups = _by_model(rows)
    references = None if reference_rows is None else _by_model(reference_rows)
    models = sorted(groups, key=lambda m: (m is None, m or ""))

    return {
        "schema": 1,
        "window": window,
        "since": since and format_when(since),
        "until": until and format_when(until),
        "models": [
            _model_report(
                model,
                groups[model],
                None if references is None else references.get(model, []),
                reference_range,
                window,
                task,
            )
            for model in models
        ],
    }


# -- command line ---------------------------------------------------------------


def _parser() -> Parser:
    parser = Parser(prog="mlf-middleware report", description=__doc__)
    parser.add_argument(
        "--sink",
        required=True,
        help="store URL: sqlite:///file.db, postgresql://..., parquet:///folder",
    )
    parser.add_argument("--model", help="only this model_version_fqn")
    parser.add_argument(
        "--since",
        type=parse_when,
        help="ISO date or time (UTC if naive), or a span back: 30m, 24h, 7d",
    )
    parser.add_argument("--until", type=parse_when, help="like --since; exclusive")
    parser.add_argument("--window", choices=tuple(WINDOWS), default="hour")
    parser.add_argument(
        "--reference-since",
        type=parse_when,
        help="drift reference range start (default: each model's first window)",
    )
    parser.add_argument(
        "--reference-until", type=parse_when, help="drift reference range end"
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="labels (accuracy) or numbers (MAE, RMSE); auto guesses",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--html", metavar="FILE", help="also write an HTML report")
    return parser


def _check_ranges(args: Any) -> None:
    if args.since and args.until and args.since >= args.until:
        raise UsageError("--since must be earlier than --until")
    if (
        args.reference_since
        and args.reference_until
        and args.reference_since >= args.reference_until
    ):
        raise UsageError("--reference-since must be earlier than --reference-until")


def _explain_empty(store: Any, args: Any) -> str:
    """Why there is nothing to report; raise UsageError for an unknown model."""
    everything = read_rows(store)
    if not everything:
        return f"the store {store.name} holds no predictions yet"
    models = sorted({str(r["model_version_fqn"]) for r in everything})
    if args.model is not None and args.model not in models:
        raise UsageError(
            f"--model: no predictions of model {args.model!r} in this store "
            f"(it holds: {', '.join(models)})"
        )
    span = (
        f"from {format_when(args.since) if args.since else 'the start'} "
        f"until {format_when(args.until) if args.until else 'now'}"
    )
    return f"no predictions {span}" + (
        f" for model {args.model!r}" if args.model else ""
    )


def report_from_args(args: Any) -> tuple[dict[str, Any], str | None]:
    """Read the store and build the report; also say why it may be empty."""
    _check_ranges(args)
    store = open_store(args.sink)
    rows = read_rows(store, args.model, args.since, args.until)
    reference = None
    if args.reference_since or args.reference_until:
        reference = read_rows(
            store, args.model, args.reference_since, args.reference_until
        )
    report = build_report(
        rows,
        window=args.window,
        reference_rows=reference,
        reference_range=(args.reference_since, args.reference_until),
        since=args.since,
        until=args.until,
        task=args.task,
    )
    report["store"] = store.name

    return report, None if rows else _explain_empty(store, args)


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON: non-finite numbers written as "NaN" / "Infinity" strings."""
    return orjson.dumps(_finite(report), option=orjson.OPT_INDENT_2).decode()


def _finite(tree: Any) -> Any:
    if isinstance(tree, float) and not math.isfinite(tree):
        return "NaN" if math.isnan(tree) else ("Infinity" if tree > 0 else "-Infinity")
    if isinstance(tree, dict):
        return {k: _finite(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_finite(v) for v in tree]
    return tree


def write_html(
    report: dict[str, Any],
    path: str | os.PathLike[str],
    empty_message: str | None = None,
) -> Path:
    """Write the HTML report to ``path`` (owner-only); raise UsageError."""
    from .html import render

    page = render(report, empty_message=empty_message or "No predictions.")
    target = Path(path).expanduser().absolute()
    try:
        refuse_symlink(target)
        fd = open_private(target, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
    except (OSError, ConfigError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"--html: cannot write {path}: {reason}") from None

    return target


def _print(report: dict[str, Any], empty: str | None, form: str, out: TextIO) -> None:
    if form == "json":
        print(to_json(report), file=out)
    if empty:
        print(empty, file=sys.stderr if form == "json" else out)
    elif form == "text":
        print(format_report(report), file=out)
    out.flush()


def run(argv: Sequence[str], *, out: TextIO | None = None) -> int:
    """Print the report; exit 2 on bad input, 0 otherwise."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        report, empty = report_from_args(args)
        if args.html:
            written = write_html(report, args.html, empty)
    except UsageError as exc:
        print(f"mlf-middleware report: {exc}", file=sys.stderr)
        return 2

    try:
        _print(report, empty, args.format, out)
    except BrokenPipeError:
        silence_stdout()
    if args.html:
        print(f"HTML report: {written}", file=sys.stderr)
    return 0
