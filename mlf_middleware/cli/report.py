"""``mlf-middleware report``: how is the model doing, read from a store.

Per model and per window (hour or day, UTC): predictions, how many have an
actual (coverage), accuracy for labels or MAE and RMSE for numbers, latency
p50 and p99, and each feature's drift (PSI) against a reference window.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from .._files import open_private, refuse_symlink
from ..exceptions import ConfigError
from ._common import Parser, terminal_safe
from ._drift import percentile
from ._figures import (
    TASKS,
    WINDOWS,
    build_report,
    resolve_task,
    summarize,
    window_start,
)
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
    "to_json",
    "window_start",
    "write_html",
]


# -- command line ---------------------------------------------------------------


def _file_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a file name")
    return text


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
    parser.add_argument(
        "--html", metavar="FILE", type=_file_name, help="also write an HTML report"
    )
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
    """Why there is nothing to report; raise UsageError for an unknown model.

    Telling an empty store from an empty range, or an unknown model from a
    quiet one, means reading the whole store: done only when needed.
    """
    span = (
        f"from {format_when(args.since) if args.since else 'the start'} "
        f"until {format_when(args.until) if args.until else 'now'}"
    )
    if args.model is None and (args.since or args.until):
        return f"no predictions {span}"
    everything = read_rows(store)
    if not everything:
        return f"the store {store.name} holds no predictions yet"
    models = sorted({str(r["model_version_fqn"]) for r in everything})
    if args.model not in models:
        raise UsageError(
            f"--model: no predictions of model {args.model!r} in this store "
            f"(it holds: {', '.join(models)})"
        )

    return f"no predictions {span} for model {args.model!r}"


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
        print(terminal_safe(format_report(report)), file=out)
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
