"""``mlf-middleware report``: how is the model doing, read from a store."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..exceptions import MLFError
from ..sinks import open_sink
from ._common import Parser

__all__ = ["percentile", "run", "summarize"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolating between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)

    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _quality(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Accuracy for labels; MAE and RMSE when the values are fractional numbers.

    Whole numbers (0/1 classes) count as labels.
    """
    if not pairs:
        return {"accuracy": None}
    numeric = all(_is_number(p) and _is_number(a) for p, a in pairs)
    fractional = any(
        isinstance(v, float) and not v.is_integer() for pair in pairs for v in pair
    )
    if numeric and fractional:
        errors = [float(p) - float(a) for p, a in pairs]
        return {
            "mae": sum(abs(e) for e in errors) / len(errors),
            "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
        }
    correct = sum(1 for p, a in pairs if p == a)

    return {"accuracy": correct / len(pairs)}


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Figures over joined rows (as a store's ``joined()`` returns them)."""
    rows = list(rows)
    pairs = [
        (row["prediction_data"].get("value"), row["actual"]["value"])
        for row in rows
        if row["actual"] is not None
    ]
    latencies = [row["latency_ms"] for row in rows if row["latency_ms"] is not None]

    return {
        "predictions": len(rows),
        "with_actual": len(pairs),
        "coverage": len(pairs) / len(rows) if rows else None,
        **_quality(pairs),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p99": percentile(latencies, 99),
    }


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parser() -> Parser:
    parser = Parser(prog="mlf-middleware report", description=__doc__)
    parser.add_argument("--sink", required=True, help="store URL (sqlite:///...)")
    parser.add_argument("--model", help="only this model_version_fqn")
    parser.add_argument("--since", type=_when, help="ISO time, inclusive")
    parser.add_argument("--until", type=_when, help="ISO time, exclusive")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def format_text(figures: dict[str, Any]) -> str:
    """Lay the figures out as an aligned two-column table."""
    def show(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    width = max(len(k) for k in figures)
    return "\n".join(f"{k:<{width}}  {show(v)}" for k, v in figures.items())


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        store = open_sink(args.sink)
    except MLFError as exc:
        print(f"mlf-middleware report: --sink: {exc}", file=sys.stderr)
        return 2
    if not hasattr(store, "joined"):
        print(
            f"mlf-middleware report: --sink: {args.sink.split(':')[0]} is not a "
            "store that can be read back (use sqlite, postgresql or parquet)",
            file=sys.stderr,
        )
        return 2
    try:
        rows = store.joined(args.model, args.since, args.until)
    except MLFError as exc:
        print(f"mlf-middleware report: {exc}", file=sys.stderr)
        return 2

    figures = summarize(rows)
    if args.format == "json":
        print(json.dumps(figures))
    elif not rows:
        print("no predictions in this store for that model and range")
    else:
        print(format_text(figures))
    return 0
