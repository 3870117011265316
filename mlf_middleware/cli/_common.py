"""What the commands share: the extras check and the argument parser."""

from __future__ import annotations

import argparse
import importlib.util

__all__ = ["Parser", "missing_extra"]


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
