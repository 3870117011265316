"""``capture_service``: record every API call of a BentoML 1.4 service.

Each ``@bentoml.api`` method's function is wrapped with ``capture`` in place,
so BentoML still reads the original name, signature, annotations and
coroutine-ness: routes, input and output schemas and the OpenAPI document do
not change. The wrapper sits where BentoML calls the user's code, so with
adaptive batching it sees the batch the dispatcher actually runs (requests
merged, or split across batches) and pairs each row with its own output.

Records reach the recorder through ``_ApiDoor``, which stamps BentoML
metadata on ``raw_data``. A batched call holds rows of several requests and
runs in the dispatcher's task, whose request and trace ids belong to
whichever request started the dispatcher: those ids are left out of batched
records rather than pinned on rows of other requests.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio.to_thread
import bentoml

from mlf_middleware.decorator import capture
from mlf_middleware.exceptions import ConfigError
from mlf_middleware.recorder import Recorder, get_recorder
from mlf_middleware.sinks import resolve_url

try:  # BentoML keeps the id of the request being served here (internal).
    from bentoml._internal.context import trace_context as _trace_context
except ImportError:  # pragma: no cover - a BentoML that moved it
    _trace_context = None

__all__ = ["capture_service"]

log = logging.getLogger(__name__)

# Set on the service class: the recorder sources its hooks open and flush.
_SOURCES = "_mlf_middleware_sources"

# APIs already wrapped (by id: APIMethod is unhashable), so that applying
# the adapter twice fails clearly.
_captured: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def capture_service(
    service: Any = None,
    /,
    *,
    sink: str | Sequence[str] | None = None,
    recorder: Recorder | None = None,
    apis: Iterable[str] | None = None,
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
    """Record the inputs and outputs of a BentoML service's APIs, one per row.

    Stack it above ``@bentoml.service`` (``@capture_service(sink=...)``, or
    bare ``@capture_service``), or call it once on the service:
    ``capture_service(MyService, sink=...)``. It returns the same service.

    Args:
        sink: sink URL, or a list of them, for a recorder built once in each
            worker process on first use (relative file paths are made
            absolute now). Mutually exclusive with ``recorder``.
        recorder: a Recorder to use as it is. With neither ``sink`` nor
            ``recorder``, the default recorder (``MLF_SINK``).
        apis: names of the APIs to record; None records every API.
        model_version_fqn, features, outputs, id, feature_names,
            class_names, model, exclude_args, redact, record_errors: as for
            ``capture``, applied to each API. ``features`` is called with the
            API's arguments as BentoML passes them, without ``self``; the
            API's ``ctx`` argument is never a feature.

    Raises:
        ConfigError: an option has a bad value (named in the message), the
            target is not a BentoML service, or an API is captured twice.
    """
    source = _RecorderSource.of(sink=sink, recorder=recorder)
    names = _check_apis(apis)
    options = {
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
    capture(**options)  # check every option now, before any service
    if service is None:
        return lambda target, /: _instrument(target, source, names, options)

    return _instrument(service, source, names, options)


def _check_apis(apis: Iterable[str] | None) -> tuple[str, ...] | None:
    """Check ``apis=``: None, or a non-empty list of API names."""
    if apis is None:
        return None
    if isinstance(apis, str) or not isinstance(apis, Iterable):
        raise ConfigError("apis must be a list of API names, not one value")

    names = tuple(apis)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ConfigError("apis must hold at least one API name")
    if len(set(names)) != len(names):
        raise ConfigError("apis names an API twice")

    return names


def _instrument(
    service: Any,
    source: _RecorderSource,
    names: tuple[str, ...] | None,
    options: dict[str, Any],
) -> Any:
    """Wrap the chosen APIs of ``service`` and add the recorder hooks."""
    if not isinstance(service, bentoml.Service):
        raise ConfigError(
            "capture_service decorates a BentoML service: stack it above "
            f"@bentoml.service, not on a {type(service).__name__}"
        )
    if names is None:
        names = tuple(service.apis)
    for name in names:
        if name not in service.apis:
            raise ConfigError(f"apis: service {service.name!r} has no API {name!r}")
        if _captured.get(id(service.apis[name])) is service.apis[name]:
            raise ConfigError(
                f"API {name!r} of service {service.name!r} is already captured"
            )

    for name in names:
        _wrap_api(service, name, source, options)
    _add_hooks(service.inner, source)

    return service


def _wrap_api(
    service: Any, name: str, source: _RecorderSource, options: dict[str, Any]
) -> None:
    """Replace one API's function by its captured version, in place."""
    method = service.apis[name]
    excluded = [*options["exclude_args"]]
    if method.ctx_param:
        excluded.append(method.ctx_param)

    door = _ApiDoor(source, service, name, batched=method.batchable)
    method.func = capture(
        method.func,
        **{
            **options,
            "recorder": door,
            "exclude_args": tuple(excluded),
            "features": _without_instance(options["features"]),
        },
    )
    _captured[id(method)] = method


def _without_instance(
    hook: Callable[..., Any] | None,
) -> Callable[..., Any] | None:
    """Call a ``features=`` hook without the service instance.

    BentoML calls an API's function with the instance as first argument, as
    a plain function, so the decorator hands the hook that instance too.
    """
    if hook is None:
        return None

    def features(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
        return hook(*args, **kwargs)

    return features


# --------------------------------------------------------------------------
# One recorder per worker process
# --------------------------------------------------------------------------


class _RecorderSource:
    """Where one ``capture_service`` sends records, resolved per process.

    Holds configuration only (sink URLs, or a Recorder, which pickles as its
    configuration); a recorder for ``sink`` is built on first use, once in
    each process that serves the service.
    """

    def __init__(
        self, sinks: tuple[str, ...] | None, recorder: Recorder | None
    ) -> None:
        self._sinks = sinks
        self._given = recorder
        self._built: Recorder | None = None
        self._used: Any = recorder
        self._lock = threading.Lock()

    @classmethod
    def of(cls, *, sink: Any, recorder: Any) -> _RecorderSource:
        """Check ``sink=`` and ``recorder=``; build the source."""
        if sink is not None and recorder is not None:
            raise ConfigError("give sink= or recorder=, not both")
        if recorder is not None and not callable(getattr(recorder, "record", None)):
            raise ConfigError(
                f"recorder must be a Recorder, not {type(recorder).__name__}"
            )
        if sink is None:
            return cls(None, recorder)

        urls = [sink] if isinstance(sink, str) else sink
        if (
            not isinstance(urls, Sequence)
            or not urls
            or not all(isinstance(url, str) and url for url in urls)
        ):
            raise ConfigError(
                "sink must be a sink URL or a list of them; for a sink "
                "object, pass recorder=Recorder(sink)"
            )

        # Resolved here, so workers started in another folder write here too.
        return cls(tuple(resolve_url(url) for url in urls), None)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_RecorderSource, (self._sinks, self._given))

    def get(self) -> Any:
        """The recorder for this process: given, built once, or the default."""
        if self._given is not None:
            return self._given
        if self._sinks is None:
            self._used = recorder = get_recorder()
            return recorder

        built = self._built
        if built is None:
            with self._lock:
                if self._built is None:
                    sinks = self._sinks
                    self._built = Recorder(sinks[0] if len(sinks) == 1 else sinks)
                    self._used = self._built
                built = self._built

        return built

    def open(self) -> None:
        """Build this process's recorder now, if it is ours to build."""
        if self._sinks is not None:
            self.get()

    def flush(self) -> None:
        """Flush the recorder this source handed out, if any."""
        recorder = self._used
        if recorder is not None:
            recorder.flush()


@bentoml.on_startup
async def _open_recorders(self: Any) -> None:
    """Service startup hook: build the recorders off the event loop."""
    for source in getattr(type(self), _SOURCES):
        await _quietly("build the recorder", source.open)


@bentoml.on_shutdown
async def _flush_recorders(self: Any) -> None:
    """Service shutdown hook: flush what this worker recorded."""
    for source in getattr(type(self), _SOURCES):
        await _quietly("flush the recorder", source.flush)


async def _quietly(what: str, work: Callable[[], None]) -> None:
    """Run a hook's work on a thread; a failure is logged, never raised.

    Capture must not keep a service from starting or stopping: a recorder
    that cannot be built now is tried again on the first call.
    """
    try:
        await anyio.to_thread.run_sync(work)
    except Exception as exc:
        log.warning("capture_service could not %s: %s", what, type(exc).__name__)


def _add_hooks(inner: type, source: _RecorderSource) -> None:
    """Register ``source`` with the startup and shutdown hooks of the class."""
    sources = inner.__dict__.get(_SOURCES)
    if sources is None:
        sources = []
        setattr(inner, _SOURCES, sources)
        inner._mlf_middleware_open = _open_recorders  # type: ignore[attr-defined]
        inner._mlf_middleware_flush = _flush_recorders  # type: ignore[attr-defined]
    if source not in sources:
        sources.append(source)


# --------------------------------------------------------------------------
# The door: the decorator's recorder, stamping BentoML metadata
# --------------------------------------------------------------------------


class _LastMetadata(threading.local):
    """The raw_data made for the latest call on this thread."""

    given: Any = None
    made: dict[str, Any] | None = None


class _ApiDoor:
    """What ``capture`` sees as its recorder for one API.

    Forwards each row to the process's recorder with ``raw_data`` replaced
    by BentoML's metadata. The decorator hands every row of one call the
    same raw_data object, so the metadata is made once per call.
    """

    __slots__ = ("_api", "_batched", "_last", "_service", "_source")

    def __init__(
        self, source: _RecorderSource, service: Any, api: str, *, batched: bool
    ) -> None:
        self._source = source
        self._service = service
        self._api = api
        self._batched = batched
        self._last = _LastMetadata()

    @property
    def enabled(self) -> bool:
        return bool(self._source.get().enabled)

    def record(
        self,
        features: Any,
        prediction_data: Mapping[str, Any],
        *,
        data_id: str | None = None,
        occurred_at: datetime | None = None,
        raw_data: Mapping[str, Any] | None = None,
        model_version_fqn: str | None = None,
        latency_ms: float | None = None,
        actual_value: Any = None,
        redact: Sequence[str] = (),
    ) -> str | None:
        """Record one row through the process's recorder."""
        return self._source.get().record(
            features,
            prediction_data,
            data_id=data_id,
            occurred_at=occurred_at,
            raw_data=self._metadata(raw_data),
            model_version_fqn=model_version_fqn,
            latency_ms=latency_ms,
            actual_value=actual_value,
            redact=redact,
        )

    def count_dropped(self, reason: str, n: int = 1) -> None:
        """Count records the capture could not make (see Recorder)."""
        self._source.get().count_dropped(reason, n)

    def record_many(
        self,
        rows: Sequence[Any],
        outputs: Sequence[Mapping[str, Any]],
        *,
        raw_data: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[str | None]:
        """Record a batch through the process's recorder."""
        return self._source.get().record_many(
            rows, outputs, raw_data=self._metadata(raw_data), **options
        )

    def _metadata(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        last = self._last
        if given is not None and last.given is given and last.made is not None:
            return last.made

        service = self._service
        made: dict[str, Any] = {
            "framework": "bentoml",
            "service": service.name,
            "api": self._api,
        }
        if service.bento is not None:
            made["bento"] = str(service.bento.tag)
        if self._batched:
            made["batched"] = True
        else:
            request_id = _request_id()
            if request_id is not None:
                made["request_id"] = request_id
            for key in ("trace_id", "span_id"):
                if given and key in given:
                    made[key] = given[key]

        # Keeping `given` alive keeps its id from being reused by a new call.
        last.given, last.made = given, made
        return made


def _request_id() -> str | None:
    """BentoML's id of the request being served, as in X-BentoML-Request-ID."""
    if _trace_context is None:
        return None
    try:
        value = _trace_context.request_id
    except Exception:  # BentoML changed; the id is a nicety
        return None

    return None if value is None else format(value, "016x")
