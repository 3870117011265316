"""``capture_deployment``: record the calls of a Ray Serve deployment.

The decorator puts a plain function (``def`` or ``async def``, the kind of
the method it replaces) where the method was. Ray pickles deployments with
cloudpickle, which copies a class defined in ``__main__`` by value and, in
doing so, turns any function-like proxy (wrapt's, ``capture``'s) back into
the bare function it wraps: capture would silently vanish. A plain function
survives. It holds a ``_Captured``, which pickles as the method and the
options and rebuilds its ``capture`` wrappers where it is unpickled.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request

from mlf_middleware._logging import RateLimitedLog
from mlf_middleware.decorator import capture
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.extract import CallParameters
from mlf_middleware.recorder import Recorder

from ._context import current_plan, replica_metadata
from ._plans import PlanMaker, Unreadable, plan_outputs, plan_rows
from ._recorder import ServeRecorder, flush_all

__all__ = ["capture_deployment"]

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)

# Set on a class whose __del__ flushes the recorders at replica shutdown.
_HOOKED = "_mlf_middleware_flush_on_shutdown"
# Set on every shell, so that nothing is captured twice.
_CAPTURED = "_mlf_middleware_captured"


def capture_deployment(
    target: Any = None,
    /,
    *,
    sink: str | Sequence[str] | None = None,
    recorder: ServeRecorder | Recorder | None = None,
    methods: Sequence[str] | None = None,
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
    """Record every call of a deployment class's methods, or of one method.

    Use bare or with options, below ``@serve.deployment``::

        @serve.deployment(num_replicas=2)
        @capture_deployment(sink="sqlite:////data/predictions.db")
        class Model:
            async def __call__(self, request: Request) -> dict: ...

    On a class it wraps ``methods`` (default ``__call__``) and makes the
    replica flush its records when Serve shuts it down (``__del__``). On a
    method or a function deployment it wraps that callable. Each call is
    recorded as ``capture`` records it, except that:

    - an argument that is a Starlette ``Request`` gives the rows of its JSON
      body (the method can still ``await request.json()``), and the result
      (a value, or a JSON ``Response``) gives the outputs, as the middleware
      reads bodies; ``features(body)`` and ``outputs(body, rows)`` replace
      those rules. A sync method cannot read a body: its requests are not
      recorded.
    - under ``@serve.batch`` (below this decorator or above it), each
      request gives its own rows, outputs and request id; hooks see one
      request at a time, with its arguments by name.

    Records carry ``framework``, ``application``, ``deployment``,
    ``replica_id`` and ``request_id`` in ``raw_data``.

    Args:
        sink: a sink URL or a list of them, for ``ServeRecorder(sink)``:
            each replica builds its own recorder on first use.
        recorder: a ``ServeRecorder`` (for Recorder options), or a
            ``Recorder``, which crosses to replicas as its configuration.
            With neither, each replica uses its default recorder.
        methods: method names to wrap on a class (default ``("__call__",)``).
        Others: as ``mlf_middleware.capture``.

    Raises:
        ConfigError: an option is bad, a method is missing, or the
            decorator sits above ``@serve.deployment``.
    """
    options = {
        "recorder": _serve_recorder(sink, recorder),
        "model_version_fqn": model_version_fqn,
        "features": features,
        "outputs": outputs,
        "id": id,
        "feature_names": feature_names,
        "class_names": class_names,
        "model": model,
        "exclude_args": exclude_args,
        "redact": redact,
        "record_errors": record_errors,
    }
    names = _method_names(methods)
    capture(**options)  # check every option now, at decoration
    if target is None:
        return lambda target, /: _apply(target, options, names, methods)

    return _apply(target, options, names, methods)


def _serve_recorder(sink: Any, recorder: Any) -> ServeRecorder:
    if sink is not None:
        if recorder is not None:
            raise ConfigError("give sink= or recorder=, not both")
        return ServeRecorder(sink)
    if recorder is None:
        return ServeRecorder()
    if isinstance(recorder, ServeRecorder):
        return recorder
    if isinstance(recorder, Recorder):
        return ServeRecorder.wrapping(recorder)

    raise ConfigError(
        f"recorder must be a ServeRecorder or a Recorder, not {type(recorder).__name__}"
    )


def _method_names(methods: Sequence[str] | None) -> tuple[str, ...]:
    if methods is None:
        return ("__call__",)
    if isinstance(methods, str) or not all(
        isinstance(name, str) and name for name in methods
    ):
        raise ConfigError("methods must be a list of method names")

    return tuple(methods)


def _apply(
    target: Any,
    options: dict[str, Any],
    names: tuple[str, ...],
    methods: Sequence[str] | None,
) -> Any:
    """Decorate a class, a method or a function deployment."""
    kind = type(target)
    if kind.__name__ in ("Deployment", "Application") and kind.__module__.startswith(
        "ray.serve"
    ):
        raise ConfigError(
            "put @capture_deployment below @serve.deployment, on the class "
            "or function itself"
        )
    if inspect.isclass(target):
        return _decorate_class(target, options, names)

    if methods is not None:
        raise ConfigError("methods= applies to a class, not to one function")
    if isinstance(target, classmethod | staticmethod) or not callable(target):
        raise ConfigError(
            "capture_deployment decorates a deployment class, one of its "
            f"methods, or a function deployment, not {kind.__name__}"
        )

    _check_not_captured(target, getattr(target, "__qualname__", "the function"))
    shell = _shell(_Captured(target, options))
    if not _Captured.method_like(target):
        # A function deployment: Serve calls its __del__ at graceful shutdown.
        shell.__del__ = flush_in_replica  # type: ignore[attr-defined]
    return shell


def _decorate_class(cls: type, options: dict[str, Any], names: tuple[str, ...]) -> type:
    """Wrap the named methods in place and hook the replica's shutdown."""
    methods = {}
    for name in names:  # check them all before changing the class
        method = inspect.getattr_static(cls, name, None)
        if method is None:
            raise ConfigError(f"{cls.__name__} has no method {name!r} to capture")
        if not inspect.isfunction(method):
            raise ConfigError(
                f"{cls.__name__}.{name} is not a plain method "
                f"({type(method).__name__}); capture_deployment wraps methods"
            )
        _check_not_captured(method, f"{cls.__name__}.{name}")
        methods[name] = _Captured(method, options)

    for name, captured in methods.items():
        setattr(cls, name, _shell(captured))

    install_flush_hook(cls)
    return cls


def _check_not_captured(func: Any, name: str) -> None:
    if getattr(func, _CAPTURED, False):
        raise ConfigError(f"{name} is captured already: it would be recorded twice")


class _Captured:
    """One decorated callable: its ``capture`` wrappers and its plan maker.

    Pickles as the callable and the options; unpickling rebuilds the rest.
    """

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.func = func
        self.options = options
        self.recorder: ServeRecorder = options["recorder"]
        self.is_method = _Captured.method_like(func)
        self.parameters = CallParameters.of(func, exclude=options["exclude_args"])
        self.plain = capture(func, **options)
        self.planned = capture(
            func, **{**options, "features": plan_rows, "outputs": plan_outputs}
        )
        self.maker = PlanMaker(
            features=options["features"],
            outputs=options["outputs"],
            feature_names=options["feature_names"],
            class_names=options["class_names"],
            model=options["model"],
        )
        self._hook_checked = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Captured, (self.func, self.options))

    @staticmethod
    def method_like(func: Any) -> bool:
        """Whether ``func`` takes ``self`` first (a method of a class)."""
        try:
            parameters = list(inspect.signature(func).parameters)
        except (TypeError, ValueError):
            return False

        return bool(parameters) and parameters[0] == "self"

    async def call_async(self, args: tuple, kwargs: dict) -> Any:
        """One call of an async method: plan it, then call through capture."""
        self.hook_shutdown(args)
        if not self.enabled():
            return await self.func(*args, **kwargs)

        try:
            arguments = self.parameters.data_arguments(args, kwargs)
            plan = await self.maker.plan(arguments, self.values(args, kwargs))
        except Unreadable:  # not a JSON body: serve it unrecorded
            return await self.func(*args, **kwargs)
        except Exception as exc:  # our failure, or a features= hook's
            self.skip(exc)
            return await self.func(*args, **kwargs)
        if plan is None:
            return await self.call_plain(args, kwargs)

        token = current_plan.set(plan)
        try:
            return await self.planned(*args, **kwargs)
        finally:
            current_plan.reset(token)

    def call_sync(self, args: tuple, kwargs: dict) -> Any:
        """One call of a sync method; a request body is out of its reach."""
        self.hook_shutdown(args)
        values = self.values(args, kwargs)
        if any(isinstance(value, Request) for value in values):
            name = getattr(self.func, "__qualname__", "?")
            warn.warning(
                f"sync:{name}",
                "capture of %s: a sync method cannot read a request body; "
                "make it async def to record its requests",
                name,
            )
            return self.func(*args, **kwargs)

        return self.call_plain(args, kwargs)

    def values(self, args: tuple, kwargs: dict) -> list[Any]:
        """Every value the call was given, but ``self``."""
        positional = args[1:] if self.is_method else args

        return [*positional, *kwargs.values()]

    def call_plain(self, args: tuple, kwargs: dict) -> Any:
        """Call through ``capture``, bound as the method was."""
        if self.is_method and args:
            bound = self.plain.__get__(args[0], type(args[0]))
            return bound(*args[1:], **kwargs)

        return self.plain(*args, **kwargs)

    def hook_shutdown(self, args: tuple) -> None:
        """In a replica, make sure the instance's class flushes at shutdown.

        A decorated method cannot see its class at decoration time, so the
        first call inside a replica installs the hook the class decorator
        installs up front.
        """
        if self._hook_checked:
            return
        self._hook_checked = True
        if self.is_method and args and replica_metadata() is not None:
            install_flush_hook(type(args[0]))

    def enabled(self) -> bool:
        try:
            return self.recorder.enabled
        except Exception:  # let capture report a broken recorder
            return True

    def skip(self, exc: BaseException) -> None:
        name = getattr(self.func, "__qualname__", "?")
        warn.warning(
            f"plan:{name}:{type(exc).__name__}",
            "capture of %s skipped: %s",
            name,
            type(exc).__name__,
        )


def _shell(captured: _Captured) -> Callable[..., Any]:
    """A plain function of the callable's kind that calls through capture.

    Its body names nothing but ``captured``: cloudpickle copies a shell of a
    class in ``__main__`` by value, with every global its code names.
    """
    func = captured.func
    if inspect.iscoroutinefunction(func):

        async def shell(*args: Any, **kwargs: Any) -> Any:
            return await captured.call_async(args, kwargs)

    elif inspect.isasyncgenfunction(func):
        # Items are passed on as they come; values sent in with asend() are
        # not forwarded (Serve only iterates a stream).
        async def shell(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            captured.hook_shutdown(args)
            async for item in captured.call_plain(args, kwargs):
                yield item

    elif inspect.isgeneratorfunction(func):

        def shell(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            captured.hook_shutdown(args)
            return (yield from captured.call_plain(args, kwargs))

    else:

        def shell(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return captured.call_sync(args, kwargs)

    shell = functools.wraps(func)(shell)
    setattr(shell, _CAPTURED, True)
    return shell


def install_flush_hook(cls: type) -> None:
    """Make ``cls.__del__`` flush this process's recorders in a replica.

    Serve calls ``__del__`` when it shuts a replica down gracefully, before
    it kills the process (which skips ``atexit``). A ``__del__`` the class
    already has runs first, sync or async.
    """
    if cls.__dict__.get(_HOOKED):
        return
    original = getattr(cls, "__del__", None)

    if original is not None and inspect.iscoroutinefunction(original):

        async def __del__(self: Any) -> None:
            try:
                await original(self)
            finally:
                await asyncio.to_thread(flush_in_replica)

    else:

        def __del__(self: Any) -> None:
            try:
                if original is not None:
                    original(self)
            finally:
                flush_in_replica()

    type.__setattr__(cls, "__del__", __del__)
    type.__setattr__(cls, _HOOKED, True)


def flush_in_replica() -> None:
    """Flush every ServeRecorder used here, when this is a Serve replica.

    Outside a replica (a test, the driver) garbage collection of a decorated
    object must not wait on sinks: the recorders flush at interpreter exit.
    """
    if replica_metadata() is None:
        return
    if not flush_all():
        log.warning("replica shutdown: records still queued after the flush timeout")
