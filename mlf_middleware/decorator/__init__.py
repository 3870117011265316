"""``@capture``: record every call of a predict function, changing nothing.

The decorator works on plain and async functions, methods, class and static
methods, ``functools.partial`` objects and callable objects (through wrapt,
which keeps the name, docstring, signature, annotations, ``__wrapped__`` and
coroutine-ness). It returns what the function returns and re-raises what it
raises. Its own work (reading rows and outputs, user hooks, hashing) is
caught at one boundary, ``Capture._skip``: a failure there logs a
rate-limited warning without record contents and the call goes on as if it
were not decorated.

Generators and async generators are streams: without ``outputs=`` they pass
through untouched and nothing is recorded. With ``outputs=``, the items are
passed on as they come and, once the stream is exhausted, recorded as
``outputs(items, rows)`` with the list of every item, the latency running
from the call to the last item. A stream closed early records nothing.

Whether a callable is async is decided once, at decoration, from
``inspect.iscoroutinefunction``. A plain function that returns a coroutine
(say, one wrapped by a decorator that hid its coroutine-ness) is served
unchanged, but its record is dropped with a warning: the recorder cannot
encode a coroutine as a value. Decorate the async function itself instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import wrapt

from .._metadata import callable_name
from ..exceptions import ConfigError
from ..extract import CallParameters
from ._call import Capture, last_ids
from ._options import Settings, check_excluded
from ._wrappers import wrapper_for

__all__ = ["capture", "last_data_ids"]


def last_data_ids() -> list[str]:
    """Return the data_ids recorded by the latest captured call.

    The ids are those of the current thread or asyncio task (a context
    variable), in row order; rows that could not be recorded are left out,
    and a call that recorded nothing leaves the list empty.
    """
    return list(last_ids.get())


def _set_last_data_ids(ids: Iterable[str]) -> None:
    """Set what ``last_data_ids()`` returns (the middleware uses this too)."""
    last_ids.set(tuple(ids))


def capture(
    func: Callable[..., Any] | None = None,
    /,
    *,
    recorder: Any = None,
    model_version_fqn: str | None = None,
    features: Callable[..., Any] | None = None,
    outputs: Callable[[Any, list[dict[str, Any]]], Any] | None = None,
    id: str | Callable[[dict[str, Any]], str] = "hash",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[Any] | None = None,
    model: Any = None,
    exclude_args: Sequence[str] = (),
    redact: Sequence[str] = (),
    record_errors: bool = False,
) -> Any:
    """Record every call of ``func``: its rows, outputs, latency and ids.

    Use bare (``@capture``) or with options (``@capture(recorder=r)``).

    Args:
        recorder: where records go; None means ``get_recorder()`` at call
            time, so ``configure()`` may run after decoration.
        model_version_fqn: model name on the records; None means the
            recorder's.
        features: ``features(*args, **kwargs)`` returns the call's rows (a
            mapping or a list of mappings), replacing the built-in rules.
        outputs: ``outputs(result, rows)`` returns one ``prediction_data``
            mapping per row, replacing the built-in rules; for a generator,
            ``result`` is the list of items it yielded.
        id: ``"hash"`` (canonical data_id of the row), ``"hash+time"``,
            ``"random"``, or a callable ``id(row) -> str`` (1 to 128 letters,
            digits and ``._:-``; anything else falls back to the hash).
        feature_names: names of array columns (default ``f0``, ``f1``, ...).
        class_names: labels of probability columns.
        model: a fitted classifier whose ``classes_`` label probabilities
            when ``class_names`` is not given.
        exclude_args: arguments that are not features (``self`` and ``cls``
            never are).
        redact: feature paths (``"user.email"``) replaced before encoding.
        record_errors: also record calls that raise, with
            ``{"value": None, "error": "<exception type>"}``.

    Raises:
        ConfigError: an option has a bad value (named in the message).
    """
    settings = Settings.check(
        recorder=recorder,
        model_version_fqn=model_version_fqn,
        features=features,
        outputs=outputs,
        id=id,
        feature_names=feature_names,
        class_names=class_names,
        model=model,
        exclude_args=exclude_args,
        redact=redact,
        record_errors=record_errors,
    )
    if func is None:
        return lambda target, /: _decorate(target, settings)

    return _decorate(func, settings)


def _decorate(func: Any, settings: Settings) -> Any:
    """Wrap ``func`` with the wrapper made for its kind of callable."""
    if not callable(func) and not isinstance(func, classmethod | staticmethod):
        raise ConfigError(
            f"capture needs a callable to decorate, not {type(func).__name__}"
        )

    target = func
    if isinstance(func, classmethod | staticmethod):
        target = func.__func__
    check_excluded(target, settings.exclude_args)

    capture_ = Capture(
        settings,
        name=callable_name(target),
        free=CallParameters.of(target, exclude=settings.exclude_args),
        bound=CallParameters.of(target, bound=True, exclude=settings.exclude_args),
    )
    wrapper = wrapper_for(capture_, target, streams=settings.outputs is not None)
    return wrapt.FunctionWrapper(func, wrapper)
