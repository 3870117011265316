"""The errors mlf-middleware raises, all rooted in one base class.

    MLFError
     +-- InvalidRecord     (also ValueError)  a record or value that cannot be kept
     +-- UnsupportedValue  (also TypeError)   a value the serialiser does not know
     +-- ConfigError       (also ValueError)  a bad option, URL or environment value
     +-- SinkError                            raised by sinks, never into the caller
          +-- SinkRejected                    these records will never be accepted
          +-- SinkUnavailable                 try again later
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InvalidRecord",
    "MLFError",
    "SinkError",
    "SinkRejected",
    "SinkUnavailable",
    "UnsupportedValue",
]


class MLFError(Exception):
    """Base class of every error raised by mlf-middleware."""


class InvalidRecord(MLFError, ValueError):
    """A record or value that breaks the record contract; names the field."""


class UnsupportedValue(MLFError, TypeError):
    """A value of a type the serialiser cannot encode; names type and place."""


class ConfigError(MLFError, ValueError):
    """A bad option, sink URL or environment variable; names it."""


class SinkError(MLFError):
    """Base class of the errors a sink raises to report a failed write."""


class SinkRejected(SinkError):
    """The sink will never accept these records: retrying cannot help.

    The pipeline splits the batch in halves until the records at fault stand
    alone, and sends those to the dead-letter file. ``records`` may name the
    records at fault, for a sink's own callers; the pipeline does not need it.
    """

    def __init__(self, message: str = "", *, records: tuple = ()) -> None:
        super().__init__(message)
        self.records = tuple(records)


class SinkUnavailable(SinkError):
    """The sink cannot take records now; ``retry_after`` is a hint in seconds."""

    def __init__(
        self, message: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
