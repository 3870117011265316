"""StdoutSink: one JSON line per record on standard output, for development."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..records import Actual, Prediction, encode

__all__ = ["StdoutSink"]


class StdoutSink:
    """Print each record's wire form as one JSON line."""

    name = "stdout"
    url = "stdout://"

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self.write_wire([encode(r) for r in records])

    def write_wire(self, lines: Sequence[bytes]) -> None:
        out = sys.stdout
        out.write(b"\n".join(lines).decode("utf-8") + "\n")
        out.flush()

    def close(self) -> None:
        """Nothing to release: standard output belongs to the process."""
