"""Entry point of ``mlf-middleware <command>`` and ``python -m mlf_middleware.cli``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from ._common import Parser

__all__ = ["main"]

# command -> (module in this package, one-line help)
COMMANDS = {
    "demo": ("demo", "train a model, serve it, log predictions and actuals, report"),
    "report": ("report", "how is the model doing: figures from a store"),
    "tail": ("tail", "follow new predictions and actuals as they arrive"),
    "replay": ("replay", "deliver a spool or JSON Lines folder to a sink"),
    "hash": ("hash", "print the data_id of JSON objects read from stdin"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = Parser(prog="mlf-middleware", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to run")
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:8} {text}")
        return 0 if args else 2
    if args[0] not in COMMANDS:
        parser.parse_args(args[:1])

    module = importlib.import_module(f"{__package__}.{COMMANDS[args[0]][0]}")
    return int(module.run(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
