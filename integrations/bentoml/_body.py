"""Rows of a BentoML request body, for ``PredictionLoggingMiddleware``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlf_middleware.exceptions import ConfigError
from mlf_middleware.extract import rows_from_body, rows_from_value

__all__ = ["request_rows"]


def request_rows(
    *, feature_names: Sequence[str] | None = None
) -> Callable[[Any], list[dict[str, Any]]]:
    """Return a ``features=`` hook that reads BentoML's JSON request bodies.

    BentoML's body is an object keyed by the API's argument names. One
    argument is unwrapped and read as ``capture`` reads it (a list of lists
    or a 2-D array is one row per item, named by ``feature_names``, else
    ``f0``, ``f1``, ...; a list of objects is one row each; an object is one
    row); several arguments make one row keyed by argument name. So the
    middleware and ``capture_service`` give the same rows and data_ids for
    the same call. Any other body is read by the middleware's usual rules.

    Raises:
        ConfigError: ``feature_names`` is not a list of strings.
    """
    names = _checked_names(feature_names)

    def rows(body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not body:
            return rows_from_body(body, feature_names=names)
        if len(body) > 1:
            return [body]

        ((name, value),) = body.items()
        return rows_from_value(value, name=name, feature_names=names)

    return rows


def _checked_names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError("feature_names must be a list of strings")

    checked = tuple(names)
    if not checked or len(set(checked)) != len(checked):
        raise ConfigError("feature_names must be distinct and not empty")

    return checked
