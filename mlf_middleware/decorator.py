"""``@capture``: record every call of a predict function, changing nothing.

The decorator works on plain and async functions, methods, class and static
methods, ``functools.partial`` objects and callable objects (through wrapt,
which keeps the name, docstring, signature, annotations, ``__wrapped__`` and
coroutine-ness). It returns what the function returns and re-raises what it
raises. Its own work (reading rows and outputs, user hooks, hashing) is
caught at one boundary, ``_Capture._skip``: a failure there logs a
rate-limited warning without record contents and the call goes on as if it
were not decorated.

Generators and async generators are streams: without ``outputs=`` they pass
through untouched and nothing is recorded. With ``outputs=``, the items are
passed on as they come and, once the stream is exhausted, recorded as
``outputs(items, rows)`` with the list of every item, the latency running
from the call to the last item. A stream closed early records nothing.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import wrapt

from . import hashing
from ._channel import RateLimitedLog
from ._metadata import callable_name, with_trace
from .exceptions import ConfigError, MLFError
from .extract import CallParameters, outputs_for_rows, rows_from_call
from .recorder import get_recorder

__all__ = ["capture", "last_data_ids"]

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)

_ID_MODES = ("hash", "hash+time", "random")
_OTEL = "opentelemetry.trace"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)

_last_ids: ContextVar[tuple[str, ...]] = ContextVar(
    "mlf_middleware_last_data_ids", default=()
)


def last_data_ids() -> list[str]:
    """Return the data_ids recorded by the latest captured call.

    The ids are those of the current thread or asyncio task (a context
    variable), in row order; rows that could not be recorded are left out,
    and a call that recorded nothing leaves the list empty.
    """
    return list(_last_ids.get())


def _set_last_data_ids(ids: Iterable[str]) -> None:
    """Set what ``last_data_ids()`` returns (the middleware uses this too)."""
    _last_ids.set(tuple(ids))


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
    settings = _Settings.check(
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


@dataclass(frozen=True, slots=True)
class _Settings:
    """The checked options of one ``capture``; shared, never changed."""

    recorder: Any
    model_version_fqn: str | None
    features: Callable[..., Any] | None
    outputs: Callable[..., Any] | None
    id: str | Callable[[dict[str, Any]], str]
    feature_names: tuple[str, ...] | None
    class_names: tuple[Any, ...] | None
    model: Any
    exclude_args: tuple[str, ...]
    redact: tuple[str, ...]
    record_errors: bool

    @classmethod
    def check(cls, **options: Any) -> _Settings:
        """Check every option; raise ConfigError naming a bad one."""
        recorder = options["recorder"]
        if recorder is not None and not callable(getattr(recorder, "record", None)):
            raise ConfigError(
                f"recorder must be a Recorder, not {type(recorder).__name__}"
            )

        fqn = options["model_version_fqn"]
        if fqn is not None and (not isinstance(fqn, str) or not fqn):
            raise ConfigError("model_version_fqn must be a non-empty string")

        for name in ("features", "outputs"):
            hook = options[name]
            if hook is not None and not callable(hook):
                raise ConfigError(f"{name} must be a callable or None")

        options["id"] = _check_id(options["id"])
        options["feature_names"] = _names(options["feature_names"], "feature_names")
        options["class_names"] = _names(options["class_names"], "class_names")
        options["exclude_args"] = _strings(options["exclude_args"], "exclude_args")
        options["redact"] = _strings(options["redact"], "redact")
        for path in options["redact"]:
            if "" in path.split("."):
                raise ConfigError(f"redact: bad path {path!r}")

        if not isinstance(options["record_errors"], bool):
            raise ConfigError("record_errors must be True or False")

        return cls(**options)


def _check_id(mode: Any) -> Any:
    """Check ``id=``: a known mode or a callable."""
    if callable(mode) or mode in _ID_MODES:
        return mode
    if isinstance(mode, str) and mode.startswith(("header:", "field:")):
        raise ConfigError(
            f"id={mode!r} takes the id from a request: only "
            "PredictionLoggingMiddleware supports it"
        )

    raise ConfigError(
        f"id must be 'hash', 'hash+time', 'random' or a callable, not {mode!r}"
    )


def _names(value: Any, option: str) -> tuple[Any, ...] | None:
    """Check a list of column or class names; keep it as a tuple."""
    if value is None:
        return None
    tolist = getattr(value, "tolist", None)  # a numpy array of labels
    if callable(tolist):
        value = tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(f"{option} must be a list of names, not one value")

    names = tuple(value)
    if not names:
        raise ConfigError(f"{option} must not be empty")
    if len(set(map(repr, names))) != len(names):
        raise ConfigError(f"{option} has duplicate names")
    if option == "feature_names" and not all(isinstance(n, str) for n in names):
        raise ConfigError("feature_names must be strings")

    return names


def _strings(value: Any, option: str) -> tuple[str, ...]:
    """Check a list of non-empty strings; keep it as a tuple."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{option} must be a list of strings, not one value")

    items = tuple(value)
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"{option} must hold non-empty strings")

    return items


# --------------------------------------------------------------------------
# Wrapping
# --------------------------------------------------------------------------


def _decorate(func: Any, settings: _Settings) -> Any:
    """Wrap ``func`` with the wrapper made for its kind of callable."""
    if not callable(func) and not isinstance(func, classmethod | staticmethod):
        raise ConfigError(
            f"capture needs a callable to decorate, not {type(func).__name__}"
        )

    target = func
    if isinstance(func, classmethod | staticmethod):
        target = func.__func__
    _check_excluded(target, settings.exclude_args)

    capture_ = _Capture(
        settings,
        name=callable_name(target),
        free=CallParameters.of(target, exclude=settings.exclude_args),
        bound=CallParameters.of(target, bound=True, exclude=settings.exclude_args),
    )
    kind = _kind_of(target)
    if kind == "async":
        wrapper = _async_wrapper(capture_)
    elif kind in ("generator", "async generator") and settings.outputs is None:
        wrapper = _pass_through
    elif kind == "generator":
        wrapper = _generator_wrapper(capture_)
    elif kind == "async generator":
        wrapper = _async_generator_wrapper(capture_)
    else:
        wrapper = _sync_wrapper(capture_)

    return wrapt.FunctionWrapper(func, wrapper)


def _kind_of(target: Any) -> str:
    """Which wrapper ``target`` needs, decided once at decoration."""
    candidates = [target]
    if not inspect.isroutine(target) and not hasattr(target, "func"):
        candidates.append(type(target).__call__)  # a callable object

    for candidate in candidates:
        if inspect.iscoroutinefunction(candidate):
            return "async"
        if inspect.isasyncgenfunction(candidate):
            return "async generator"
        if inspect.isgeneratorfunction(candidate):
            return "generator"

    return "sync"


def _check_excluded(target: Any, exclude_args: tuple[str, ...]) -> None:
    """Refuse ``exclude_args`` naming an argument ``target`` cannot take."""
    if not exclude_args:
        return
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to check against
        return

    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for name in exclude_args:
        if name not in parameters:
            raise ConfigError(
                f"exclude_args names {name!r}, which the function does not take"
            )


def _pass_through(
    wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
) -> Any:
    return wrapped(*args, **kwargs)


def _sync_wrapper(capture_: _Capture) -> Callable[..., Any]:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
    ) -> Any:
        recorder = capture_.recorder()
        if recorder is None:
            return wrapped(*args, **kwargs)

        rows = capture_.rows(instance, args, kwargs)
        start = time.perf_counter()
        try:
            result = wrapped(*args, **kwargs)
        except Exception as exc:
            capture_.failed(recorder, rows, exc, _since(start))
            raise

        capture_.succeeded(recorder, rows, result, _since(start))
        return result

    return wrapper


def _async_wrapper(capture_: _Capture) -> Callable[..., Any]:
    async def call(
        wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
    ) -> Any:
        recorder = capture_.recorder()
        if recorder is None:
            return await wrapped(*args, **kwargs)

        rows = capture_.rows(instance, args, kwargs)
        start = time.perf_counter()
        try:
            result = await wrapped(*args, **kwargs)
        except Exception as exc:
            capture_.failed(recorder, rows, exc, _since(start))
            raise

        capture_.succeeded(recorder, rows, result, _since(start))
        return result

    # A plain function returning the coroutine: wrapt calls it synchronously.
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
    ) -> Any:
        return call(wrapped, instance, args, kwargs)

    return wrapper


def _generator_wrapper(capture_: _Capture) -> Callable[..., Any]:
    def stream(
        recorder: Any, rows: Any, start: float, generator: Generator
    ) -> Generator:
        tap = _Tap(generator)
        try:
            returned = yield from tap
        except Exception as exc:
            capture_.failed(recorder, rows, exc, _since(start))
            raise

        capture_.succeeded(recorder, rows, tap.items, _since(start))
        return returned

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
    ) -> Any:
        recorder = capture_.recorder()
        if recorder is None:
            return wrapped(*args, **kwargs)

        rows = capture_.rows(instance, args, kwargs)
        start = time.perf_counter()
        return stream(recorder, rows, start, wrapped(*args, **kwargs))

    return wrapper


def _async_generator_wrapper(capture_: _Capture) -> Callable[..., Any]:
    async def stream(
        recorder: Any, rows: Any, start: float, generator: AsyncGenerator
    ) -> AsyncGenerator:
        items: list[Any] = []
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                try:
                    if thrown is None:
                        item = await generator.asend(sent)
                    else:
                        item, thrown = await generator.athrow(thrown), None
                except StopAsyncIteration:
                    break
                items.append(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:  # athrow() by the consumer: pass on
                    thrown, sent = exc, None
        except Exception as exc:
            capture_.failed(recorder, rows, exc, _since(start))
            raise
        finally:
            await generator.aclose()

        capture_.succeeded(recorder, rows, items, _since(start))

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
    ) -> Any:
        recorder = capture_.recorder()
        if recorder is None:
            return wrapped(*args, **kwargs)

        rows = capture_.rows(instance, args, kwargs)
        start = time.perf_counter()
        return stream(recorder, rows, start, wrapped(*args, **kwargs))

    return wrapper


class _Tap:
    """Iterate a generator for ``yield from``, keeping each item it yields.

    ``yield from`` hands ``send``, ``throw`` and ``close`` through to this
    object, which hands them on, so the stream behaves as the original.
    """

    __slots__ = ("_generator", "items")

    def __init__(self, generator: Generator) -> None:
        self._generator = generator
        self.items: list[Any] = []

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> Any:
        return self._keep(next(self._generator))

    def send(self, value: Any) -> Any:
        return self._keep(self._generator.send(value))

    def throw(self, *exc: Any) -> Any:
        return self._keep(self._generator.throw(*exc))

    def close(self) -> None:
        self._generator.close()

    def _keep(self, item: Any) -> Any:
        self.items.append(item)
        return item


def _since(start: float) -> float:
    """Milliseconds since ``start`` (a ``perf_counter`` reading)."""
    return (time.perf_counter() - start) * 1000.0


# --------------------------------------------------------------------------
# The work of one call, with its one boundary
# --------------------------------------------------------------------------


class _Capture:
    """What one decorated callable does around each call.

    Holds only settings made at decoration: every call's state lives in the
    wrapper's locals, so threads and tasks never share a record.
    """

    __slots__ = ("_bound", "_free", "_name", "_settings")

    def __init__(
        self,
        settings: _Settings,
        *,
        name: str,
        free: CallParameters,
        bound: CallParameters,
    ) -> None:
        self._settings = settings
        self._name = name
        self._free = free
        self._bound = bound

    def recorder(self) -> Any:
        """The recorder for this call, or None when capture is off."""
        try:
            recorder = self._settings.recorder or get_recorder()
            return recorder if recorder.enabled else None
        except Exception as exc:
            self._skip(exc)
            return None

    def rows(self, instance: Any, args: tuple, kwargs: dict) -> list | None:
        """The call's rows of features, read before the call; None on failure."""
        settings = self._settings
        try:
            return rows_from_call(
                args,
                kwargs,
                parameters=self._free if instance is None else self._bound,
                features=settings.features,
                feature_names=settings.feature_names,
            )
        except Exception as exc:
            self._skip(exc)
            return None

    def succeeded(
        self, recorder: Any, rows: list | None, result: Any, latency_ms: float
    ) -> None:
        """Record one prediction per row of a call that returned ``result``."""
        if rows is None:
            _last_ids.set(())
            return
        settings = self._settings
        try:
            outputs = outputs_for_rows(
                result,
                rows,
                outputs=settings.outputs,
                class_names=settings.class_names,
                model=settings.model,
            )
            if outputs is None:
                _last_ids.set(())
                warn.warning(
                    f"unpaired:{self._name}",
                    "capture of %s: the result does not pair with its %d "
                    "rows; nothing recorded",
                    self._name,
                    len(rows),
                )
                return
            self._record(recorder, rows, outputs, latency_ms)
        except Exception as exc:
            self._skip(exc)

    def failed(
        self,
        recorder: Any,
        rows: list | None,
        error: BaseException,
        latency_ms: float,
    ) -> None:
        """Record a call that raised, when ``record_errors`` asks for it."""
        if rows is None or not self._settings.record_errors:
            _last_ids.set(())
            return
        outputs = [{"value": None, "error": type(error).__name__} for _ in rows]
        try:
            self._record(recorder, rows, outputs, latency_ms)
        except Exception as exc:
            self._skip(exc)

    def _record(
        self,
        recorder: Any,
        rows: list,
        outputs: list,
        latency_ms: float,
    ) -> None:
        settings = self._settings
        raw_data = {"framework": "python", "function": self._name}
        if _OTEL in sys.modules:  # no span can be active before it is imported
            with_trace(raw_data)
        mode = settings.id
        occurred_at = datetime.now(UTC) if mode == "hash+time" else None

        ids = []
        for index, row in enumerate(rows):
            data_id = recorder.record(
                row,
                outputs[index],
                data_id=None if mode == "hash" else self._data_id(row, occurred_at),
                occurred_at=occurred_at,
                raw_data=raw_data,
                model_version_fqn=settings.model_version_fqn,
                latency_ms=latency_ms,
                redact=settings.redact,
            )
            if data_id is not None:
                ids.append(data_id)

        _last_ids.set(tuple(ids))

    def _data_id(self, row: Any, occurred_at: datetime | None) -> str | None:
        """The row's data_id by the ``id=`` mode; None lets the recorder hash."""
        mode = self._settings.id
        if mode == "hash":
            return None
        if mode == "hash+time":
            return hashing.generate_hash_from_data(row, occurred_at)
        if mode == "random":
            return uuid.uuid4().hex

        try:
            data_id = mode(row)
        except Exception as exc:
            warn.warning(
                f"id:{self._name}",
                "capture of %s: id= callable raised %s; using the hash",
                self._name,
                type(exc).__name__,
            )
            return None
        if isinstance(data_id, str) and _VALID_ID.fullmatch(data_id):
            return data_id

        warn.warning(
            f"id:{self._name}",
            "capture of %s: id= callable gave an invalid id; using the hash",
            self._name,
        )
        return None

    def _skip(self, exc: BaseException) -> None:
        """The boundary: log our own failure, never its record contents."""
        _last_ids.set(())
        reason = str(exc)[:200] if isinstance(exc, MLFError) else "-"
        warn.warning(
            f"skip:{self._name}:{type(exc).__name__}",
            "capture of %s skipped: %s: %s",
            self._name,
            type(exc).__name__,
            reason,
        )
