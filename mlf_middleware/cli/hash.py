"""``mlf-middleware hash``: print the data_id of JSON objects read from stdin."""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

from ..exceptions import MLFError
from ..hashing import (
    SCHEMES,
    canonical_json,
    format_timestamp,
    generate_hash_from_data,
    normalize,
)
from ._common import Parser

__all__ = ["run"]

DESCRIPTION = """\
Read one JSON object, or JSON Lines (one object per line), from stdin and
print the data_id of each object, one per line, in order. Each object is
the features mapping, as generate_hash_from_data receives it. Exits 2,
printing nothing on stdout, when an argument or any input is bad."""


class BadInput(Exception):
    """Input that is not a JSON object; the message names where."""


def run(argv: list[str]) -> int:
    """Run the command; return 0, or 2 for bad arguments or input."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message
        return int(exit_.code or 0)

    try:
        if args.text and args.scheme != "canonical":
            raise BadInput("--text works with the canonical scheme only")
        timestamp = _timestamp(args.timestamp)
        lines = [
            _line(obj, where, timestamp, args) for where, obj in _objects(sys.stdin)
        ]
    except (BadInput, MLFError) as exc:
        print(f"mlf-middleware hash: error: {exc}", file=sys.stderr)
        return 2

    if lines:
        _write("\n".join(lines) + "\n")
    return 0


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit flush stays quiet


def _parser() -> Parser:
    parser = Parser(prog="mlf-middleware hash", description=DESCRIPTION)
    parser.add_argument(
        "--timestamp",
        metavar="TIME",
        help="ISO 8601 date-time made part of every id "
        "(naive means UTC), e.g. 2024-01-01T12:00:00Z",
    )
    parser.add_argument(
        "--scheme",
        choices=SCHEMES,
        default="canonical",
        help="id scheme (default: canonical; mlfoundry reproduces mlfoundry)",
    )
    parser.add_argument(
        "--text",
        action="store_true",
        help="print the canonical text after each id, tab-separated "
        "(canonical scheme only)",
    )
    return parser


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(
            f"--timestamp: not an ISO 8601 date-time: {text!r:.60}"
        ) from None


def _objects(stream: TextIO) -> Iterator[tuple[str, dict]]:
    """Yield the objects of stdin: one JSON object, or one per line."""
    try:
        data = stream.read()
    except UnicodeDecodeError:
        raise BadInput("stdin is not UTF-8 text") from None
    if not data.strip():
        raise BadInput("no input: expected a JSON object on stdin")

    try:
        whole = json.loads(data)
    except RecursionError:
        raise BadInput("input is nested too deeply") from None
    except ValueError:
        pass  # not one document: read it as JSON Lines
    else:
        yield "input", _checked(whole, "input")
        return

    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            where = f"line {number}"
            yield where, _checked(_parsed(line, number), where)


def _parsed(line: str, number: int) -> object:
    try:
        return json.loads(line)
    except RecursionError:
        raise BadInput(f"line {number}: nested too deeply") from None
    except ValueError as exc:
        raise BadInput(f"line {number}: not valid JSON ({exc})") from None


def _checked(obj: object, where: str) -> dict:
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: expected a JSON object, got {_json_type(obj)}")
    return obj


def _json_type(obj: object) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if obj is None or isinstance(obj, bool):
        return json.dumps(obj)
    return "a number"


def _line(obj: dict, where: str, timestamp: datetime | None, args: Namespace) -> str:
    try:
        data_id = generate_hash_from_data(obj, timestamp, scheme=args.scheme)
    except MLFError as exc:
        raise BadInput(f"{where}: {exc}") from None
    if not args.text:
        return data_id

    text = canonical_json(normalize(obj, path="features"))
    if timestamp is not None:
        text += "|" + format_timestamp(timestamp)
    return f"{data_id}\t{text}"
