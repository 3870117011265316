"""What the commands share: the extras check and the argument parser."""

from __future__ import annotations

import argparse
import importlib.util
import re
from collections.abc import Callable

__all__ = ["Parser", "missing_extra", "seconds", "terminal_safe"]


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message, never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def missing_extra(command: str, *modules: str) -> str | None:
    """Return a message if a module of the ``cli`` extra is missing."""
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (
        f"mlf-middleware {command} needs the 'cli' extra "
        f"(missing: {', '.join(absent)}): pip install 'mlf-middleware[cli]'"
    )


def seconds(maximum: float) -> Callable[[str], float]:
    """An argparse type: a positive, finite number of seconds up to ``maximum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number of seconds above 0 and at most {maximum:g}"
            )
        return value

    return parse


# Control characters other than newline and tab: feature and model names
# come from HTTP clients, and must not drive the reader's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Show control characters as ``\\xNN`` instead of sending them."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
