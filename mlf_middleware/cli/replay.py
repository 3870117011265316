"""``mlf-middleware replay``: deliver a spool or JSON Lines folder to a sink.

Records keep their record_id, data_id and time, so stores that already hold
some of them keep one copy. Progress is saved per file in
``.mlf-replay-<sink>.json`` inside the source folder: a second run skips the
files a first run finished. Records the sink would not take in time stay in
the recorder's spool for that sink and go out with the next run (or with any
recorder for that sink).
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from .._files import open_private
from ..config import MAX_SECONDS
from ..exceptions import MLFError
from ..recorder import Recorder
from ._common import Parser, seconds

__all__ = ["run"]

_PATTERNS = ("seg-*.jsonl", "*.jsonl", "*.jsonl.gz")


def _files(source: Path) -> list[Path]:
    seen: dict[Path, None] = {}
    for pattern in _PATTERNS:
        for path in sorted(source.glob(pattern)):
            if not path.name.startswith(("deadletter-", ".mlf-replay")):
                seen[path] = None
    return list(seen)


def _claim(path: Path) -> int | None:
    """Lock a spool segment; None while a live recorder holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _lines(path: Path) -> Iterator[bytes]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        yield from handle


class _Progress:
    """A one-line progress bar on a terminal, a line per file otherwise."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.done, self.out = total, 0, out
        self.tty = out.isatty()

    def advance(self, n: int, label: str) -> None:
        self.done += n
        if self.tty:
            width = 30
            filled = width * self.done // max(1, self.total)
            bar = "#" * filled + "." * (width - filled)
            self.out.write(f"\r[{bar}] {self.done}/{self.total} records")
        else:
            self.out.write(f"{label}: {self.done}/{self.total} records\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty:
            self.out.write("\n")


def _state_path(source: Path, sink_url: str) -> Path:
    digest = hashlib.sha1(sink_url.encode("utf-8")).hexdigest()[:10]
    return source / f".mlf-replay-{digest}.json"


def _load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"done": []}
    return json.loads(path.read_text("utf-8"))


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the progress file (owner-only), replacing it whole."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = open_private(temporary, os.O_WRONLY)
    try:
        os.write(fd, json.dumps(state).encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _parser() -> Parser:
    parser = Parser(prog="mlf-middleware replay", description=__doc__)
    parser.add_argument("source", type=Path, help="spool or JSON Lines folder")
    parser.add_argument("--sink", required=True, help="destination sink URL")
    parser.add_argument(
        "--timeout",
        type=seconds(MAX_SECONDS),
        default=30.0,
        help="seconds to wait for each file's records (default 30)",
    )
    return parser


def _offer_file(recorder: Recorder, path: Path) -> tuple[int, int]:
    """Queue a file's records; return (records, unreadable lines)."""
    good = bad = 0
    for line in _lines(path):
        line = line.strip()
        if not line:
            continue
        try:
            record = orjson.loads(line)
            if record.get("type") not in ("prediction", "actual"):
                raise ValueError
        except ValueError:
            bad += 1
            continue
        recorder.offer_encoded(line)
        good += 1
    return good, bad


def run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    source: Path = args.source
    if not source.is_dir():
        print(f"mlf-middleware replay: source: no folder {source}", file=sys.stderr)
        return 2
    try:
        recorder = Recorder(args.sink, max_delay=0.05)
    except MLFError as exc:
        print(f"mlf-middleware replay: --sink: {exc}", file=sys.stderr)
        return 2

    target = getattr(recorder.sinks[0], "path", None)
    if target is not None and Path(target).resolve() == source.resolve():
        recorder.close(timeout=0)
        print(
            "mlf-middleware replay: --sink writes into the source folder, "
            "which would replay its own output",
            file=sys.stderr,
        )
        return 2

    state_path = _state_path(source, args.sink)
    state = _load_state(state_path)
    files = _files(source)
    todo = [p for p in files if p.name not in state["done"]]
    total = sum(1 for p in todo for _ in _lines(p))
    progress = _Progress(total, sys.stderr)
    unreadable = busy = 0
    for path in todo:
        # A spool segment is consumed: locked while read, deleted once
        # delivered. One a live recorder holds is that recorder's to send.
        lock = _claim(path) if path.name.startswith("seg-") else None
        if path.name.startswith("seg-") and lock is None:
            busy += 1
            continue
        try:
            count, bad = _offer_file(recorder, path)
            unreadable += bad
            if not recorder.flush(args.timeout):
                break
            if lock is not None:
                path.unlink()
            else:
                state["done"].append(path.name)
                _save_state(state_path, state)
        finally:
            if lock is not None:
                os.close(lock)
        progress.advance(count + bad, path.name)
    progress.end()
    stats = recorder.close(timeout=args.timeout)

    print(
        f"delivered {stats['written']}, rejected {stats['rejected']} "
        f"(dead letter), left for a later run {stats['spooled']}, "
        f"unreadable lines {unreadable}, files in use by a live recorder "
        f"{busy}, files done {len(state['done'])} of {len(files)}"
    )
    return 0 if stats["spooled"] == 0 and not stats["queue_size"] else 1
