"""The report's figures: per model and window, quality, latency and drift."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ._drift import Bins, histogram_pair, kind_of, percentile, psi
from ._store import format_when

__all__ = [
    "HISTOGRAMS",
    "TASKS",
    "WINDOWS",
    "build_report",
    "resolve_task",
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


def _feature_drift(
    name: str,
    reference: list[dict[str, Any]],
    windows: list[tuple[datetime, list[dict[str, Any]]]],
    column: list[Any],
) -> tuple[str, list[float | None], dict[str, Any] | None]:
    """One feature's kind, PSI per window, and histogram pair (worst window).

    ``column`` holds the feature's values over the windows' rows, in order.
    """
    first = reference is windows[0][1]  # the first window is the reference
    ref_values = column[: len(reference)] if first else _values(reference, name)
    kind = kind_of(column if first else ref_values + column)
    if not reference:
        return kind, [None] * len(windows), None
    bins = Bins.from_reference(kind, ref_values)
    ref_shares = bins.shares(ref_values)
    slices, at = [], 0
    for _, group in windows:
        slices.append(column[at : at + len(group)])
        at += len(group)
    values = [psi(ref_shares, bins.shares(part)) for part in slices]
    # The latest window among equals: drift that lasts matters most.
    worst = max(range(len(values)), key=lambda i: (values[i], i))
    pair = {
        "feature": name,
        "kind": kind,
        "psi": values[worst],
        "window": format_when(windows[worst][0]),
        **histogram_pair(bins, ref_values, slices[worst]),
    }
    return kind, values, pair


def _drift(
    reference: list[dict[str, Any]],
    windows: list[tuple[datetime, list[dict[str, Any]]]],
) -> tuple[list[dict[str, Any]], list[dict[str, float | None]], list[dict]]:
    """Per feature: kind and worst PSI; per window: PSI by feature; histograms."""
    rows = [row for _, group in windows for row in group]
    names = sorted({n for row in [*reference, *rows] for n in row["features"] or {}})
    features, pairs = [], []
    by_window: list[dict[str, float | None]] = [{} for _ in windows]
    for name in names:
        kind, values, pair = _feature_drift(
            name, reference, windows, _values(rows, name)
        )
        for i, value in enumerate(values):
            by_window[i][name] = value
        features.append(
            {
                "name": name,
                "kind": kind,
                "max_psi": pair and pair["psi"],
                "max_psi_window": pair and pair["window"],
            }
        )
        if pair:
            pairs.append(pair)
    features.sort(key=lambda f: (-(f["max_psi"] or 0.0), f["name"]))
    pairs.sort(key=lambda p: (-p["psi"], p["feature"]))

    return features, by_window, pairs[:HISTOGRAMS]


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
