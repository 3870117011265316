"""An ASGI endpoint that receives actuals (ground truth) for recorded data_ids."""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import orjson

from . import extract, hashing
from ._asgi import (
    EXCHANGE_KEY,
    VALID_ID,
    Message,
    Receive,
    Scope,
    Send,
    default_recorder,
    loads_json,
    optional_list,
    positive_int,
)
from .config import env_str
from .exceptions import ConfigError, MLFError

__all__ = ["ActualsApp", "actuals_app"]

log = logging.getLogger(__name__)

_FIELDS = frozenset(
    {"data_id", "features", "value", "occurred_at", "model_version_fqn"}
)
_JSON_HEADERS = [(b"content-type", b"application/json")]


def actuals_app(
    recorder: Any = None,
    *,
    token: str | None = None,
    feature_names: Iterable[str] | None = None,
    max_body_bytes: int = 1_048_576,
) -> ActualsApp:
    """Build the ASGI app that records actuals (ground truth) for data_ids.

    Route it at an exact path, ``app.add_route("/actuals", actuals_app(),
    methods=["POST"])`` (FastAPI or Starlette), or mount it:
    ``app.mount("/actuals", actuals_app())`` answers at ``/actuals/``.

    It answers ``POST`` with a JSON body: ``{"data_id": ..., "value": ...}``,
    a list of such objects, or ``{"features": {...}, "value": ...}`` whose
    data_id is the canonical hash of the row, exactly as the middleware's
    default ``id="hash"`` computes it (a list of values is named by
    ``feature_names``, else ``f0``, ``f1``, ...). Each object may also give
    ``occurred_at`` (RFC 3339) and ``model_version_fqn``.

    Answers: 202 ``{"accepted": n, "dropped": k, "data_ids": [...]}``
    (``dropped`` counts actuals the recorder refused, e.g. when disabled or
    closed); 400 when the body is not JSON; 422 naming what is wrong, and
    then nothing is recorded; 401 without the bearer token; 405 for other
    methods; 413 over ``max_body_bytes``. Error bodies are
    ``{"error": "<reason>"}``.

    Requests it answers are never captured as predictions by a
    ``PredictionLoggingMiddleware`` around the app it is mounted in.

    Args:
        recorder: where actuals go; None means ``get_recorder()``.
        token: the bearer token clients must send as ``Authorization: Bearer
            <token>``; None means ``MLF_ACTUALS_TOKEN``; with neither, the
            endpoint is open to anyone who can reach it.
        feature_names: column names for ``features`` given as a list.
        max_body_bytes: largest request body accepted.
    """
    return ActualsApp(
        recorder,
        token=token,
        feature_names=feature_names,
        max_body_bytes=max_body_bytes,
    )


class _Invalid(Exception):
    """The request is well-formed JSON but not a valid actual; says why."""


@dataclass(frozen=True, slots=True)
class _Item:
    data_id: str
    value: Any
    occurred_at: datetime | None
    model_version_fqn: str | None


class ActualsApp:
    """The ASGI app ``actuals_app()`` returns; see there."""

    mlf_actuals_app = True  # lets tooling recognise a mounted actuals app

    def __init__(
        self,
        recorder: Any = None,
        *,
        token: str | None = None,
        feature_names: Iterable[str] | None = None,
        max_body_bytes: int = 1_048_576,
    ) -> None:
        if token is None:
            token = env_str("MLF_ACTUALS_TOKEN")
            if token is None and "MLF_ACTUALS_TOKEN" in os.environ:
                # Set but blank: a mistake that must not leave the door open.
                raise ConfigError("MLF_ACTUALS_TOKEN is set but blank")
        elif not isinstance(token, str) or not token.strip():
            raise ConfigError("token must be a non-empty string or None")

        self.recorder = recorder
        self.feature_names = optional_list("feature_names", feature_names)
        self.max_body_bytes = positive_int("max_body_bytes", max_body_bytes)
        self._token = None if token is None else token.strip().encode("utf-8")

    def __repr__(self) -> str:
        guarded = "token" if self._token is not None else "open"
        return f"<ActualsApp {guarded}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            await send({"type": "websocket.close", "code": 1008})
            return

        # Tell a surrounding PredictionLoggingMiddleware to leave this alone.
        exchange = scope.get(EXCHANGE_KEY)
        if exchange is not None:
            exchange.skip()

        answer = await self._answer(scope, receive)
        if answer is not None:
            await _respond(send, *answer)

    async def _answer(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        """Return status, JSON body and extra headers; None if the client left."""
        if scope["method"] != "POST":
            return 405, {"error": "method not allowed: use POST"}, [(b"allow", b"POST")]
        headers = dict(_lowered(scope.get("headers") or ()))
        if not self._authorized(headers.get(b"authorization")):
            return (
                401,
                {"error": "missing or invalid bearer token"},
                [(b"www-authenticate", b"Bearer")],
            )
        too_large = (413, {"error": f"body over {self.max_body_bytes} bytes"}, [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return too_large

        try:
            body = await _read_body(receive, self.max_body_bytes)
        except _TooLarge:
            return too_large
        if body is None:
            return None

        try:
            payload = loads_json(body)
        except (ValueError, RecursionError):
            return 400, {"error": "body is not valid JSON"}, []
        try:
            items = self._items(payload)
        except _Invalid as problem:
            return 422, {"error": str(problem)}, []

        return self._record(items)

    def _authorized(self, header: bytes | None) -> bool:
        if self._token is None:
            return True
        if header is None:
            return False
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False

        return hmac.compare_digest(credentials.strip(), self._token)

    def _record(
        self, items: list[_Item]
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        try:
            recorder = self.recorder
            if recorder is None:
                recorder = default_recorder(create=True)
        except Exception as exc:  # e.g. a bad MLF_SINK
            log.warning("actuals not recorded: %s", type(exc).__name__)
            return 503, {"error": "recorder unavailable"}, []

        accepted = 0
        for item in items if recorder.enabled else ():
            accepted += bool(
                recorder.record_actual(
                    item.data_id,
                    item.value,
                    occurred_at=item.occurred_at,
                    model_version_fqn=item.model_version_fqn,
                )
            )
        body = {
            "accepted": accepted,
            "dropped": len(items) - accepted,
            "data_ids": [item.data_id for item in items],
        }
        return 202, body, []

    # -- validation ------------------------------------------------------------

    def _items(self, payload: Any) -> list[_Item]:
        if isinstance(payload, dict):
            return [self._item(payload, "")]
        if not isinstance(payload, list):
            raise _Invalid(
                'body must be an object {"data_id": ..., "value": ...} '
                "or a list of them"
            )
        if not payload:
            raise _Invalid("body is an empty list")

        return [self._item(entry, f"item {i}: ") for i, entry in enumerate(payload)]

    def _item(self, entry: Any, where: str) -> _Item:
        if not isinstance(entry, dict):
            raise _Invalid(f"{where}each actual must be an object")
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise _Invalid(f"{where}unknown field {unknown[0][:64]!r}")
        if "value" not in entry:
            raise _Invalid(f'{where}missing "value"')
        if entry["value"] is None:
            raise _Invalid(f'{where}"value" must not be null')
        if ("data_id" in entry) == ("features" in entry):
            raise _Invalid(f'{where}give exactly one of "data_id" and "features"')

        if "data_id" in entry:
            data_id = _checked_id(entry["data_id"], where)
        else:
            data_id = self._id_of(entry["features"], where)
        return _Item(
            data_id=data_id,
            value=entry["value"],
            occurred_at=_checked_time(entry.get("occurred_at"), where),
            model_version_fqn=_checked_model(entry.get("model_version_fqn"), where),
        )

    def _id_of(self, features: Any, where: str) -> str:
        """Hash the row as the middleware does for the same request row."""
        if isinstance(features, list):
            try:
                rows = extract.rows_from_body(
                    {"instances": [features]}, feature_names=self.feature_names
                )
            except MLFError as exc:
                raise _Invalid(f'{where}"features": {exc}') from None
            features = rows[0] if len(rows) == 1 else None
        if not isinstance(features, Mapping):
            raise _Invalid(f'{where}"features" must be an object')

        try:
            return hashing.generate_hash_from_data(features)
        except MLFError as exc:
            raise _Invalid(f'{where}"features" cannot be hashed: {exc}') from None

    # -- lifespan, when served as the root app --------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._flush()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _flush(self) -> None:
        recorder = self.recorder
        if recorder is None:
            recorder = default_recorder(create=False)
        if recorder is None:
            return

        try:
            await anyio.to_thread.run_sync(recorder.flush)
        except Exception as exc:
            log.warning("flush at shutdown failed: %s", type(exc).__name__)


class _TooLarge(Exception):
    """The request body is over the cap."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """Read the whole body, or None when the client disconnects first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(bytes(chunk))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[bytes, bytes]],
) -> None:
    body = orjson.dumps(payload)
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            *_JSON_HEADERS,
            (b"content-length", str(len(body)).encode("ascii")),
            *headers,
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _lowered(headers: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[bytes, bytes]]:
    for name, value in headers:
        yield bytes(name).lower(), bytes(value)


def _checked_id(value: Any, where: str) -> str:
    if isinstance(value, str) and VALID_ID.fullmatch(value):
        return value

    raise _Invalid(
        f'{where}"data_id" must be 1 to 128 characters of letters, digits and ._:-'
    )


def _checked_time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None

    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _Invalid(f'{where}"occurred_at" must be an RFC 3339 time') from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _checked_model(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and 0 < len(value) <= 256):
        return value

    raise _Invalid(
        f'{where}"model_version_fqn" must be a string of 1 to 256 characters'
    )
