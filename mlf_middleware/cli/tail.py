"""``mlf-middleware tail``: follow predictions, and their actuals, as they arrive.

Prints the last few predictions of the store, then polls it and prints one
line per new prediction, and one per actual that joins a prediction already
shown. Each poll re-reads the predictions of the last ``--lookback`` seconds
(by ``occurred_at``) through the store's ``joined()`` and remembers which
records it printed, so a record that reaches the store later than that after
it happened (a sink outage, a long spool) is not shown, nor is an actual
that arrives later than that after its prediction.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import orjson

from ._common import Parser, seconds, terminal_safe
from ._store import UsageError, format_when, open_store, read_rows, silence_stdout

__all__ = ["Follower", "follow", "format_event", "run"]

# How far back the first read goes, widened until it finds --lines records.
_BACKLOG_SPANS = (timedelta(hours=1), timedelta(days=1), timedelta(days=30), None)
_VALUE_WIDTH = 60

Event = tuple[str, dict[str, Any]]  # ("prediction" | "actual", joined row)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class Follower:
    """Turn successive reads of a store into new-record events."""

    def __init__(
        self,
        store: Any,
        *,
        model: str | None = None,
        lookback: timedelta = timedelta(seconds=120),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.model = store, model
        self.lookback, self.clock = lookback, clock
        self.cursor: datetime | None = None
        # record_id -> (occurred_at, whether its actual was shown)
        self.seen: dict[str, tuple[datetime, bool]] = {}

    def backlog(self, lines: int) -> list[Event]:
        """The last ``lines`` predictions; everything read counts as seen."""
        now = self.clock()
        wider = [s for s in _BACKLOG_SPANS if s is None or s > self.lookback]
        rows: list[dict[str, Any]] = []
        for span in [self.lookback, *wider]:
            start = None if span is None else now - span
            rows = read_rows(self.store, self.model, start)
            if len(rows) >= lines:
                break
        for row in rows:
            self._remember(row)

        return [("prediction", row) for row in rows[-lines:]] if lines else []

    def poll(self) -> list[Event]:
        """Predictions not seen before, and actuals newly joined to seen ones."""
        now = self.clock()
        start = min(self.cursor or now, now) - self.lookback
        events: list[Event] = []
        for row in read_rows(self.store, self.model, start):
            known = self.seen.get(row["record_id"])
            if known is None:
                events.append(("prediction", row))
            elif row["actual"] is not None and not known[1]:
                events.append(("actual", row))
            self._remember(row)
        # Rows before ``start`` cannot come back: the next start is later.
        self.seen = {k: v for k, v in self.seen.items() if v[0] >= start}

        return events

    def _remember(self, row: dict[str, Any]) -> None:
        when = _utc(row["occurred_at"])
        self.seen[row["record_id"]] = (when, row["actual"] is not None)
        self.cursor = when if self.cursor is None else max(self.cursor, when)


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode("utf-8")
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


def format_event(event: Event, form: str = "text") -> str:
    """One line for an event: readable text, or the whole row as JSON."""
    kind, row = event
    if form == "json":
        return _json_line(kind, row)
    data = row["prediction_data"]
    model = row["model_version_fqn"] or "-"
    if kind == "actual":
        return (
            f"{format_when(row['actual']['occurred_at'])}  actual      {model}  "
            f"{row['data_id']}  {_short(row['actual']['value'])}  "
            f"(predicted {_short(data.get('value'))})"
        )
    parts = [format_when(row["occurred_at"]), "prediction", model, row["data_id"]]
    if data.get("error"):
        parts.append(f"error {data['error']}")
    else:
        parts.append(_short(data.get("value")) + _probability(data))
    if row["actual"] is not None:
        parts.append(f"actual {_short(row['actual']['value'])}")
    if row["latency_ms"] is not None:
        parts.append(f"{row['latency_ms']:.2f} ms")

    return "  ".join(parts)


def _probability(data: dict[str, Any]) -> str:
    probabilities = data.get("probabilities")
    if not isinstance(probabilities, dict):
        return ""
    p = probabilities.get(str(data.get("value")))
    return f" (p={p:.3f})" if isinstance(p, int | float) else ""


def _json_line(kind: str, row: dict[str, Any]) -> str:
    actual = row["actual"]
    if actual is not None:
        actual = {**actual, "occurred_at": format_when(actual["occurred_at"])}
    body = {
        "event": kind,
        **row,
        "occurred_at": format_when(row["occurred_at"]),
        "actual": actual,
    }
    return orjson.dumps(body).decode("utf-8")


def follow(
    store: Any,
    out: TextIO,
    *,
    model: str | None = None,
    lines: int = 10,
    limit: int | None = None,
    interval: float = 1.0,
    lookback: float = 120.0,
    form: str = "text",
    stop: threading.Event | None = None,
) -> int:
    """Print the backlog, then new events until ``limit`` lines or ``stop``."""
    stop = stop or threading.Event()
    follower = Follower(store, model=model, lookback=timedelta(seconds=lookback))
    printed = 0
    events = follower.backlog(lines)
    while True:
        for event in events:
            if limit is not None and printed >= limit:
                return printed
            out.write(terminal_safe(format_event(event, form)) + "\n")
            printed += 1
        out.flush()
        if (limit is not None and printed >= limit) or stop.wait(interval):
            return printed
        events = follower.poll()


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


# A poll interval or look-back beyond ten years is a typo, not a wish.
_seconds = seconds(10 * 365 * 86_400.0)


def _parser() -> Parser:
    parser = Parser(prog="mlf-middleware tail", description=__doc__)
    parser.add_argument(
        "--sink",
        required=True,
        help="store URL: sqlite:///file.db, postgresql://..., parquet:///folder",
    )
    parser.add_argument("--model", help="only this model_version_fqn")
    parser.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=10,
        help="how many of the latest predictions to print first (default 10)",
    )
    parser.add_argument(
        "--limit", type=_count, help="stop after printing this many lines"
    )
    parser.add_argument(
        "--interval", type=_seconds, default=1.0, help="seconds between polls"
    )
    parser.add_argument(
        "--lookback",
        type=_seconds,
        default=120.0,
        help="seconds of predictions re-read on each poll (default 120)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def run(
    argv: Sequence[str],
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Follow the store; exit 2 on bad input, 130 on Ctrl-C."""
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    try:
        store = open_store(args.sink)
        follow(
            store,
            out,
            model=args.model,
            lines=args.lines,
            limit=args.limit,
            interval=args.interval,
            lookback=args.lookback,
            form=args.format,
            stop=stop,
        )
    except UsageError as exc:
        print(f"mlf-middleware tail: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        silence_stdout()
    except KeyboardInterrupt:
        return 130
    return 0
