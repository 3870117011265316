"""Record the JSON prediction exchanges of an ASGI app, as pure ASGI middleware."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from . import _asgi as asgi
from . import extract, hashing
from ._asgi import EXCHANGE_KEY, VALID_ID, ASGIApp, Message, Receive, Scope, Send
from ._logging import RateLimitedLog
from ._metadata import with_trace
from ._redact import parse_paths
from .decorator import _set_last_data_ids
from .exceptions import InvalidRecord

__all__ = ["PredictionLoggingMiddleware"]

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)

_METHODS = frozenset({"POST", "PUT"})


class PredictionLoggingMiddleware:
    """Record each JSON prediction request and its response; change nothing.

    Pure ASGI. For every captured exchange it adds ``x-data-id`` to the
    response (the row ids, comma-separated; over 100 rows the header is left
    out and ``x-data-id-count`` gives the number) and, once the response
    body is complete, hands one record per row to the recorder.

    What is captured: POST and PUT requests whose content type is JSON (or
    absent) on the paths that ``paths`` selects, answered with a 2xx JSON
    response. Requests answered by an ``actuals_app`` mounted anywhere in the
    wrapped app are never captured. Everything else passes straight through.

    The request body reaches the app exactly as the server delivers it
    (message by message, same bytes); the middleware keeps a copy, up to
    ``max_body_bytes``. Rows and ids are computed when the response starts
    (over 100 rows, when it ends), so an app that answers before reading the
    whole body is not captured.

    Capture never changes serving: our failures, and unusable bodies (not
    JSON, an unknown shape, a request over the caps), are logged as a
    rate-limited WARNING without contents and the exchange goes unrecorded.
    A response over ``max_body_bytes`` or ``max_depth`` is recorded with
    ``{"value": None, "error": "ResponseTooLarge"}`` (or ``ResponseTooDeep``)
    and ``raw_data["truncated"] = "response"``, so its rows and ids still
    reach the store. Errors raised by the app pass through untouched and
    nothing is recorded for them, nor for non-2xx responses.

    Each record's ``raw_data`` holds ``framework`` ("asgi"), ``method``,
    ``path``, ``route`` (the matched route's template, under Starlette or
    FastAPI routing), ``request_id`` (from ``x-request-id``), ``status``,
    ``headers`` (those of ``capture_headers`` present), ``trace_id`` and
    ``span_id`` when an OpenTelemetry span is active, and ``truncated``.
    ``last_data_ids()`` gives the ids in the request's task once the
    response has started, for batches of up to 100 rows; larger batches are
    recorded on a worker thread after the response, and their ids reach the
    client only through the records (``x-data-id-count`` gives the count).

    Args:
        app: the ASGI app to wrap.
        recorder: where records go; None means ``get_recorder()``, looked up
            at each request. A recorder whose ``enabled`` is False makes the
            middleware a pass-through.
        paths: shell-style globs (``fnmatch``; ``*`` also matches ``/``)
            matched against the request path. An entry starting with ``!``
            excludes. A path is captured when it matches an include (or no
            includes are given) and no exclude:
            ``["/predict*", "!/predict/health"]``, or ``["!/admin/*"]`` for
            everything but admin. None (default) captures every path.
        model_version_fqn: stamped on the records; None is the recorder's.
        features: ``features(body) -> rows`` on the parsed request body,
            replacing the built-in shapes (``extract.rows_from_body``).
        outputs: ``outputs(body, rows) -> list[prediction_data]`` on the
            parsed response body, replacing ``extract.outputs_from_body``.
        id: ``"hash"`` (canonical hash of each row), ``"hash+time"``,
            ``"random"``, ``"header:<name>"`` (comma-separated for a batch),
            ``"field:<name>"`` (a field of each row), or ``id(row) -> str``.
            Ids from the request must be 1 to 128 characters of letters,
            digits and ``._:-``; others are replaced by the hash (warning).
        feature_names: names of the columns of list-of-lists bodies.
        class_names: labels of probability arrays in responses.
        capture_headers: request headers copied into ``raw_data["headers"]``;
            Authorization, Cookie, Set-Cookie, Proxy-Authorization and
            X-API-Key never are, even when named.
        max_body_bytes: cap on the request and the response body kept.
        max_depth: cap on JSON nesting depth of captured bodies.
        redact: feature paths the recorder redacts before encoding.
    """

    def __init__(
        self,
        app: ASGIApp,
        recorder: Any = None,
        *,
        paths: Iterable[str] | str | None = None,
        model_version_fqn: str | None = None,
        features: Callable[[Any], Any] | None = None,
        outputs: Callable[[Any, list[dict[str, Any]]], Any] | None = None,
        id: str | Callable[[Mapping[str, Any]], str] = "hash",
        feature_names: Iterable[str] | None = None,
        class_names: Iterable[Any] | None = None,
        capture_headers: Iterable[str] | str = (),
        max_body_bytes: int = 1_048_576,
        max_depth: int = 32,
        redact: Iterable[str] | str = (),
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.model_version_fqn = asgi.optional_string(
            "model_version_fqn", model_version_fqn
        )
        self.features = asgi.callable_or_none("features", features)
        self.outputs = asgi.callable_or_none("outputs", outputs)
        self.feature_names = asgi.optional_list("feature_names", feature_names)
        self.class_names = asgi.optional_list("class_names", class_names)
        self.max_body_bytes = asgi.positive_int("max_body_bytes", max_body_bytes)
        self.max_depth = asgi.positive_int("max_depth", max_depth)
        self.redact = tuple(asgi.strings("redact", redact))
        parse_paths(self.redact)  # refuse now what the recorder would refuse
        self._include, self._exclude = asgi.compile_paths(paths)
        self._id_mode, self._id_arg = asgi.parse_id(id)
        self._captured = asgi.captured_headers(capture_headers)
        self._wanted = frozenset(
            {asgi.CONTENT_TYPE, asgi.CONTENT_ENCODING, asgi.REQUEST_ID, *self._captured}
            | ({self._id_arg} if self._id_mode == "header" else set())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["method"] in _METHODS:
            exchange = self._open(scope, receive, send)
            if exchange is not None:
                try:
                    await self.app(scope, exchange.receive, exchange.send)
                finally:
                    exchange.close()
                return
        elif kind == "lifespan":
            await self.app(scope, receive, self._flushing_on_shutdown(send))
            return

        await self.app(scope, receive, send)

    def wants(self, path: str) -> bool:
        """Tell whether ``paths`` selects this request path."""
        if self._include is not None and not self._include.match(path):
            return False

        return self._exclude is None or not self._exclude.match(path)

    def _open(self, scope: Scope, receive: Receive, send: Send) -> _Exchange | None:
        """Start capturing one request, or return None to pass it through."""
        try:
            if not self.wants(scope["path"]):
                return None
            recorder = self.recorder
            if recorder is None:
                recorder = asgi.default_recorder(create=True)
            if not recorder.enabled:
                return None
            # ASGI servers give request header names in lower case already.
            headers = asgi.scan_headers(
                scope.get("headers") or (), self._wanted, lower=False
            )
            if not asgi.is_json(headers.get(asgi.CONTENT_TYPE)):
                return None
            return _Exchange(self, recorder, headers, scope, receive, send)
        except Exception as exc:  # a broken recorder must not break serving
            warn.warning("open", "request not captured: %s", type(exc).__name__)
            return None

    def _flushing_on_shutdown(self, send: Send) -> Send:
        """Wrap lifespan ``send`` to flush the recorder before shutdown ends."""

        async def send_after_flush(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown."):
                await self._flush()
            await send(message)

        return send_after_flush

    async def _flush(self) -> None:
        """Flush the recorder on a worker thread: flush() blocks."""
        recorder = self.recorder
        if recorder is None:
            recorder = asgi.default_recorder(create=False)
        if recorder is None:
            return

        try:
            await anyio.to_thread.run_sync(recorder.flush)
        except Exception as exc:
            log.warning("flush at shutdown failed: %s", type(exc).__name__)


class _Exchange:
    """The capture state of one request; it lives as long as the request."""

    __slots__ = (
        "headers",
        "ids",
        "middleware",
        "parent",
        "recorder",
        "request",
        "response",
        "response_encoding",
        "rows",
        "scope",
        "server_receive",
        "server_send",
        "skipped",
        "stamp",
        "started",
        "status",
    )

    def __init__(
        self,
        middleware: PredictionLoggingMiddleware,
        recorder: Any,
        headers: dict[bytes, bytes],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self.started = time.perf_counter()
        self.middleware = middleware
        self.recorder = recorder
        self.headers = headers
        self.scope = scope
        self.server_receive = receive
        self.server_send = send
        self.request = asgi.Buffer(middleware.max_body_bytes)
        self.response: asgi.Buffer | None = None
        self.response_encoding = b""
        self.rows: list[Mapping[str, Any]] | None = None
        self.ids: list[str] | None = None
        # The request's time, in ids and records, when ids include the time.
        self.stamp: datetime | None = (
            datetime.now(UTC) if middleware._id_mode == "hash+time" else None
        )
        self.status = 0
        self.skipped = False

        # Nested middlewares chain their exchanges so one skip() reaches all.
        self.parent = scope.get(EXCHANGE_KEY)
        scope[EXCHANGE_KEY] = self

    def close(self) -> None:
        """Unhook from the scope, so the request's memory is freed at once."""
        if self.scope.get(EXCHANGE_KEY) is self:
            if self.parent is None:
                del self.scope[EXCHANGE_KEY]
            else:
                self.scope[EXCHANGE_KEY] = self.parent
        self.rows = self.ids = self.response = None
        self.request.release()

    def skip(self) -> None:
        """Leave this request uncaptured (an actuals_app is answering it)."""
        self.skipped = True
        if self.parent is not None:
            self.parent.skip()

    # -- the ASGI message flow -------------------------------------------------
    #
    # receive: every message goes to the app as the server produced it; body
    # chunks are copied aside until the body is complete. Later receive()
    # calls (the disconnect an app waits for) pass straight through.
    #
    # send: the response start gets the id headers, computed from the request
    # body at that moment; each body chunk is copied (apps may reuse a buffer)
    # and forwarded at once, never held back. After the last chunk has gone
    # out, the records are handed to the recorder, which never blocks.

    async def receive(self) -> Message:
        message = await self.server_receive()
        if not self.request.complete and message["type"] == "http.request":
            self.request.add(message.get("body", b""), message.get("more_body"))

        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            message = self._on_start(message)
        elif kind == "http.response.body":
            more = message.get("more_body", False)
            if self.response is not None:
                self.response.add(message.get("body", b""), more)
            await self.server_send(message)
            if not more:
                await self._finish()
            return

        await self.server_send(message)
        if kind == "http.response.pathsend":
            await self._finish()

    async def _finish(self) -> None:
        """Record once the response is out; big batches off the event loop.

        Hashing and encoding a batch of thousands of rows takes long enough
        to stall every other request on the loop, so beyond the rows the
        header can list (whose ids are made after the response anyway) the
        work runs on a worker thread.
        """
        rows = self.rows
        if rows is not None and len(rows) > asgi.MAX_HEADER_IDS:
            await anyio.to_thread.run_sync(self._on_end)
        else:
            self._on_end()

    # -- response start: rows, ids, headers ------------------------------------

    def _on_start(self, message: Message) -> Message:
        try:
            return self._annotate(message)
        except Exception as exc:  # our failure, or a user's hook
            self.rows = self.ids = None
            self._dropped("capture_failed")
            warn.warning("start", "request not captured: %s", type(exc).__name__)
            return message

    def _annotate(self, message: Message) -> Message:
        self.status = status = message["status"]
        if self.skipped or not 200 <= status < 300:
            return message
        response = asgi.scan_headers(
            message.get("headers") or (), asgi.RESPONSE_HEADERS
        )
        encoding = (response.get(asgi.CONTENT_ENCODING) or b"").strip().lower()
        if (
            not asgi.is_json(response.get(asgi.CONTENT_TYPE))
            or encoding not in asgi.DECODABLE
        ):
            return message
        rows = self._request_rows()
        if not rows:
            return message

        # Over the header's limit only the count is sent, so the ids can
        # wait until the response is out instead of delaying its start.
        ids = self._make_ids(rows) if len(rows) <= asgi.MAX_HEADER_IDS else None
        headers = list(message.get("headers") or ())
        asgi.add_id_headers(headers, ids, len(rows), response)

        self.rows, self.ids = rows, ids
        if ids is not None:
            _set_last_data_ids(ids)
        self.response = asgi.Buffer(self.middleware.max_body_bytes)
        self.response_encoding = encoding
        return {**message, "headers": headers}

    def _request_rows(self) -> list[Mapping[str, Any]] | None:
        """Parse the request body into rows, or return None (logged)."""
        if not self.request.complete:
            log.debug("response started before the request body was read")
            return None

        middleware = self.middleware
        try:
            encoding = self.headers.get(asgi.CONTENT_ENCODING, b"").strip().lower()
            body = self.request.parse(encoding, middleware.max_depth)
        except asgi.Unreadable as reason:
            self._warn_unreadable("request", reason)
            return None
        if body is asgi.EMPTY:
            return None

        if middleware.features is not None:
            return self._checked_rows(middleware.features(body))
        try:
            return extract.rows_from_body(body, feature_names=middleware.feature_names)
        except InvalidRecord:
            return self._checked_rows(None)

    def _checked_rows(self, rows: Any) -> list[Mapping[str, Any]] | None:
        if isinstance(rows, Mapping):
            return [rows]
        if isinstance(rows, list) and all(isinstance(r, Mapping) for r in rows):
            return rows

        warn.warning(
            "rows",
            "request on %r not captured: no rows of features",
            self.scope.get("path"),
        )
        self._dropped("no_rows")
        return None

    def _make_ids(self, rows: list[Mapping[str, Any]]) -> list[str]:
        mode, arg = self.middleware._id_mode, self.middleware._id_arg
        if mode == "hash":
            return [hashing.generate_hash_from_data(row) for row in rows]
        if mode == "hash+time":
            stamp = self.stamp
            return [hashing.generate_hash_from_data(row, stamp) for row in rows]
        if mode == "random":
            return [uuid.uuid4().hex for _ in rows]

        if mode == "header":
            given = asgi.split_ids(self.headers.get(arg), len(rows))
        elif mode == "field":
            given = [row.get(arg) for row in rows]
        else:
            given = [arg(row) for row in rows]

        return [_valid_id(value, row) for value, row in zip(given, rows, strict=True)]

    # -- response end: outputs and records -------------------------------------

    def _on_end(self) -> None:
        rows, ids = self.rows, self.ids
        if rows is None:
            return
        self.rows = self.ids = None
        latency_ms = (time.perf_counter() - self.started) * 1000.0

        try:
            if ids is None:
                ids = self._make_ids(rows)
                _set_last_data_ids(ids)
            self._record(rows, ids, latency_ms)
        except Exception as exc:  # our failure, or a user's hook
            self._dropped("capture_failed", len(rows))
            warn.warning("end", "response not recorded: %s", type(exc).__name__)

    def _record(
        self, rows: list[Mapping[str, Any]], ids: list[str], latency_ms: float
    ) -> None:
        truncated = False
        try:
            outputs = self._outputs(rows)
        except asgi.Unreadable as reason:
            error = asgi.REASONS[reason.args[0]]
            if error is None:
                self._warn_unreadable("response", reason)
                return
            truncated = True
            outputs = [{"value": None, "error": error} for _ in rows]
        if outputs is None:
            self._dropped("unpaired", len(rows))
            return

        raw_data = self._raw_data(truncated)
        middleware = self.middleware
        record = self.recorder.record
        for row, output, data_id in zip(rows, outputs, ids, strict=True):
            record(
                row,
                output,
                data_id=data_id,
                occurred_at=self.stamp,
                raw_data=raw_data,
                model_version_fqn=middleware.model_version_fqn,
                latency_ms=latency_ms,
                redact=middleware.redact,
            )

    def _outputs(self, rows: list[Mapping[str, Any]]) -> list[Any] | None:
        """One prediction_data per row from the response, or None (logged)."""
        middleware = self.middleware
        body = self.response.parse(self.response_encoding, middleware.max_depth)
        if body is asgi.EMPTY:
            raise asgi.Unreadable("empty")

        if middleware.outputs is not None:
            outputs = middleware.outputs(body, rows)
        else:
            outputs = extract.outputs_from_body(
                body, len(rows), class_names=middleware.class_names
            )
        if isinstance(outputs, list) and len(outputs) == len(rows):
            return outputs

        warn.warning(
            "outputs",
            "response on %r not recorded: %s outputs for %d rows",
            self.scope.get("path"),
            len(outputs) if isinstance(outputs, list) else "no",
            len(rows),
        )
        return None

    def _raw_data(self, truncated: bool) -> dict[str, Any]:
        scope = self.scope
        raw: dict[str, Any] = {
            "framework": "asgi",
            "method": scope["method"],
            "path": scope["path"],
        }
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            raw["route"] = route
        request_id = self.headers.get(asgi.REQUEST_ID)
        if request_id:
            raw["request_id"] = request_id[:256].decode("latin-1")
        raw["status"] = self.status

        captured = {
            name.decode("latin-1"): self.headers[name].decode("latin-1")
            for name in self.middleware._captured
            if name in self.headers
        }
        if captured:
            raw["headers"] = captured
        if truncated:
            raw["truncated"] = "response"
        return with_trace(raw)

    def _dropped(self, reason: str, n: int = 1) -> None:
        """Count what this exchange could not record (never raises)."""
        count = getattr(self.recorder, "count_dropped", None)
        if count is not None:
            with contextlib.suppress(Exception):
                count(reason, n)

    def _warn_unreadable(self, side: str, reason: asgi.Unreadable) -> None:
        self._dropped(f"unreadable_{side}")
        warn.warning(
            f"unreadable-{side}",
            "%s %r not captured: the %s body is %s",
            self.scope["method"],
            self.scope.get("path"),
            side,
            reason.args[0],
        )


def _valid_id(value: Any, row: Mapping[str, Any]) -> str:
    """Return a request-supplied id if well formed, else the row's hash."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and VALID_ID.fullmatch(value):
        return value

    warn.warning(
        "bad-id",
        "request-supplied data_id missing or not 1-128 characters of "
        "letters, digits and ._:-; using the canonical hash",
    )
    return hashing.generate_hash_from_data(row)
