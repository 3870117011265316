"""MemorySink: keeps records in a list, for tests and notebooks."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..records import Actual, Prediction

__all__ = ["MemorySink"]


class MemorySink:
    """Keep every written record, in order, in ``records``."""

    name = "memory"
    url = "memory://"

    def __init__(self) -> None:
        self.records: list[Prediction | Actual] = []
        self._lock = threading.Lock()
        self.closed = False

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        with self._lock:
            self.records.extend(records)

    @property
    def predictions(self) -> list[Prediction]:
        """The written predictions, in order."""
        return [r for r in self.records if isinstance(r, Prediction)]

    @property
    def actuals(self) -> list[Actual]:
        """The written actuals, in order."""
        return [r for r in self.records if isinstance(r, Actual)]

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    def close(self) -> None:
        self.closed = True

    def __getstate__(self) -> dict[str, Any]:
        # Pickles as configuration: the copy starts empty.
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
