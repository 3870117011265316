"""One wrapper per kind of callable: sync, async, generator, async generator.

Each keeps its call's state in locals, measures latency with
``time.perf_counter`` around the call, and hands the rest to ``Capture``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from ._call import Capture

__all__ = ["wrapper_for"]

Wrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]


def wrapper_for(capture_: Capture, target: Any, *, streams: bool) -> Wrapper:
    """The wrapper for ``target``'s kind; ``streams`` records generators."""
    kind = kind_of(target)
    if kind == "async":
        return async_wrapper(capture_)
    if kind == "sync":
        return sync_wrapper(capture_)
    if not streams:
        return pass_through
    if kind == "generator":
        return generator_wrapper(capture_)

    return async_generator_wrapper(capture_)


def kind_of(target: Any) -> str:
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


def pass_through(
    wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
) -> Any:
    return wrapped(*args, **kwargs)


def sync_wrapper(capture_: Capture) -> Callable[..., Any]:
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
            capture_.failed(recorder, rows, exc, since(start))
            raise

        capture_.succeeded(recorder, rows, result, since(start))
        return result

    return wrapper


def async_wrapper(capture_: Capture) -> Callable[..., Any]:
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
            capture_.failed(recorder, rows, exc, since(start))
            raise

        capture_.succeeded(recorder, rows, result, since(start))
        return result

    # A plain function returning the coroutine: wrapt calls it synchronously.
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict
    ) -> Any:
        return call(wrapped, instance, args, kwargs)

    return wrapper


def generator_wrapper(capture_: Capture) -> Callable[..., Any]:
    def stream(
        recorder: Any, rows: Any, start: float, generator: Generator
    ) -> Generator:
        tap = Tap(generator)
        try:
            returned = yield from tap
        except Exception as exc:
            capture_.failed(recorder, rows, exc, since(start))
            raise

        capture_.succeeded(recorder, rows, tap.items, since(start))
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


def async_generator_wrapper(capture_: Capture) -> Callable[..., Any]:
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
            capture_.failed(recorder, rows, exc, since(start))
            raise
        finally:
            await generator.aclose()

        capture_.succeeded(recorder, rows, items, since(start))

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


class Tap:
    """Iterate a generator for ``yield from``, keeping each item it yields.

    ``yield from`` hands ``send``, ``throw`` and ``close`` through to this
    object, which hands them on, so the stream behaves as the original.
    """

    __slots__ = ("_generator", "items")

    def __init__(self, generator: Generator) -> None:
        self._generator = generator
        self.items: list[Any] = []

    def __iter__(self) -> Tap:
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


def since(start: float) -> float:
    """Milliseconds since ``start`` (a ``perf_counter`` reading)."""
    return (time.perf_counter() - start) * 1000.0
