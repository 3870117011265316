"""ASGI plumbing shared by the middleware and actuals_app: bodies, headers, options."""

from __future__ import annotations

import fnmatch
import json
import re
import zlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from . import recorder as _recorder_module
from .exceptions import ConfigError

__all__ = [
    "CONTENT_ENCODING",
    "CONTENT_TYPE",
    "DECODABLE",
    "EMPTY",
    "EXCHANGE_KEY",
    "ID_MODES",
    "MAX_HEADER_IDS",
    "REASONS",
    "REQUEST_ID",
    "RESPONSE_HEADERS",
    "SECRET_HEADERS",
    "VALID_ID",
    "ASGIApp",
    "Buffer",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "Unreadable",
    "add_id_headers",
    "callable_or_none",
    "captured_headers",
    "compile_paths",
    "decoded",
    "deeper_than",
    "default_recorder",
    "is_json",
    "loads_json",
    "optional_list",
    "optional_string",
    "parse_id",
    "positive_int",
    "scan_headers",
    "split_ids",
    "strings",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The scope key under which each request's capture state is reachable, so
# that an actuals_app answering the request can tell the middleware to leave
# it alone. Only code running inside the app can see it; clients cannot.
EXCHANGE_KEY = "mlf_middleware.exchange"

MAX_HEADER_IDS = 100
SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"}
)
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)

ID_MODES = ("hash", "hash+time", "random")
DECODABLE = {b"": 0, b"identity": 0, b"gzip": 47, b"x-gzip": 47, b"deflate": 47}
CONTENT_TYPE = b"content-type"
CONTENT_ENCODING = b"content-encoding"
REQUEST_ID = b"x-request-id"


class Unreadable(Exception):
    """A body we cannot capture; the argument is a reason from REASONS."""


# Why a body could not be read, and the error recorded when a response is
# over a cap (the rows and ids are still worth keeping then).
REASONS = {
    "too large": "ResponseTooLarge",
    "too deeply nested": "ResponseTooDeep",
    "not JSON": None,
    "empty": None,
    "in an unsupported content coding": None,
}


EMPTY = object()
RESPONSE_HEADERS = frozenset(
    {
        CONTENT_TYPE,
        CONTENT_ENCODING,
        b"access-control-allow-origin",
        b"access-control-expose-headers",
    }
)


class Buffer:
    """A capped copy of a body, kept chunk by chunk."""

    __slots__ = ("chunks", "complete", "limit", "overflow", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self.overflow = False

    def add(self, chunk: Any, more_body: Any) -> None:
        """Keep a copy of ``chunk``: the sender may reuse its buffer."""
        if not more_body:
            self.complete = True
        if self.overflow or not chunk:
            return

        self.size += len(chunk)
        if self.size > self.limit:
            self.overflow = True
            self.chunks = []
            return
        self.chunks.append(bytes(chunk))

    def release(self) -> None:
        """Drop the kept bytes and keep nothing more."""
        self.chunks = []
        self.complete = True

    def parse(self, encoding: bytes, max_depth: int) -> Any:
        """Return the parsed JSON body, ``EMPTY``, or raise Unreadable."""
        if self.overflow:
            raise Unreadable("too large")
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if encoding:
            data = decoded(data, encoding, self.limit)
        if not data:
            return EMPTY

        try:
            body = loads_json(data)
        except ValueError:
            raise Unreadable("not JSON") from None
        except RecursionError:
            raise Unreadable("too deeply nested") from None
        if deeper_than(body, data, max_depth):
            raise Unreadable("too deeply nested")

        return body


# An integer of 16 digits or more, which orjson would read as a float.
_LONG_INTEGER = re.compile(rb"(?<![.\d])\d{16,}(?![.\deE])")


def loads_json(data: bytes) -> Any:
    """Parse a JSON body without losing what the client sent.

    orjson is fast but reads integers beyond 64 bits as floats, and refuses
    escaped lone surrogates and numbers beyond a double's range; the
    standard library keeps the integer exact and reads the others (the
    normaliser then gives them their documented form), so such bodies take
    that path. Raises ValueError for text that is not JSON.
    """
    if _LONG_INTEGER.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def decoded(data: bytes, encoding: bytes, limit: int) -> bytes:
    """Undo gzip or deflate content coding, within ``limit`` bytes."""
    wbits = DECODABLE.get(encoding)
    if wbits is None:
        raise Unreadable("in an unsupported content coding")
    if not wbits:  # identity
        return data

    try:
        plain = zlib.decompressobj(wbits).decompress(data, limit + 1)
    except zlib.error:
        raise Unreadable("not JSON") from None
    if len(plain) > limit:  # a small body may inflate hugely: stop at the cap
        raise Unreadable("too large")

    return plain


_CONTAINERS = (dict, list)  # a tuple: isinstance checks it faster than a union


def deeper_than(body: Any, data: bytes, limit: int) -> bool:
    """Tell whether the JSON value nests containers deeper than ``limit``."""
    # Each level needs its own bracket, so few brackets means shallow.
    if not isinstance(body, _CONTAINERS):
        return False
    if data.count(b"{") + data.count(b"[") <= limit:
        return False

    stack = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))

    return False


# -- small helpers ---------------------------------------------------------------


def default_recorder(*, create: bool) -> Any:
    """Return the process-wide recorder, building it only when asked."""
    # Reading the module global first avoids get_recorder()'s lock on the
    # event loop once the default exists.
    existing = getattr(_recorder_module, "_default", None)
    if existing is not None or not create:
        return existing

    return _recorder_module.get_recorder()


def scan_headers(
    headers: Iterable[tuple[bytes, bytes]],
    wanted: frozenset[bytes],
    *,
    lower: bool = True,
) -> dict[bytes, bytes]:
    """Collect the wanted headers (names lower case, repeats joined by ", ")."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if lower:
            name = bytes(name).lower()
        if name in wanted:
            previous = found.get(name)
            found[name] = (
                bytes(value) if previous is None else (previous + b", " + bytes(value))
            )

    return found


def is_json(content_type: bytes | None) -> bool:
    """JSON media types, or none at all (many clients send no type)."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()

    return media == b"application/json" or media.endswith(b"+json")


def add_id_headers(
    headers: list[Any],
    ids: list[str] | None,
    count: int,
    response: dict[bytes, bytes],
) -> None:
    """Append x-data-id (or, without ids, x-data-id-count); expose for CORS."""
    if ids is not None:
        name = b"x-data-id"
        headers.append((name, ",".join(ids).encode("ascii")))
    else:
        name = b"x-data-id-count"
        headers.append((name, str(count).encode("ascii")))
    if b"access-control-allow-origin" not in response:
        return

    # A list-valued header may repeat; clients join the lines with commas,
    # so adding a line of our own leaves the app's own lines untouched.
    exposed = response.get(b"access-control-expose-headers", b"")
    if name not in {item.strip().lower() for item in exposed.split(b",")}:
        headers.append((b"access-control-expose-headers", name))


def split_ids(value: bytes | None, count: int) -> list[Any]:
    """Split a header of comma-separated ids; None for each when it fails."""
    if value is None:
        return [None] * count
    parts = [part.strip() for part in value.decode("latin-1").split(",")]

    return parts if len(parts) == count else [None] * count


# -- option checks ---------------------------------------------------------------


def parse_id(value: Any) -> tuple[str, Any]:
    if callable(value):
        return "callable", value
    if value in ID_MODES:
        return value, None
    if isinstance(value, str):
        kind, _, name = value.partition(":")
        if kind == "header" and name.strip():
            return "header", name.strip().lower().encode("latin-1")
        if kind == "field" and name:
            return "field", name

    raise ConfigError(
        "id must be 'hash', 'hash+time', 'random', 'header:<name>', "
        f"'field:<name>' or a callable, got {value!r}"
    )


def compile_paths(
    paths: Iterable[str] | str | None,
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Compile include and exclude globs into one regex each."""
    include: list[str] = []
    exclude: list[str] = []
    for pattern in strings("paths", paths or ()):
        glob = pattern.removeprefix("!")
        if not glob:
            raise ConfigError(f"paths has an empty pattern: {pattern!r}")
        target = exclude if pattern.startswith("!") else include
        target.append(fnmatch.translate(glob))

    def joined(patterns: list[str]) -> re.Pattern[str] | None:
        return re.compile("|".join(patterns)) if patterns else None

    return joined(include), joined(exclude)


# RFC 9110 token characters: what a header field name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def captured_headers(names: Iterable[str] | str) -> frozenset[bytes]:
    """Lower-case the names to capture, leaving out the secret ones."""
    kept = {n.strip().lower() for n in strings("capture_headers", names)}
    for name in kept:
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"capture_headers: {name!r} is not a header name")

    return frozenset(name.encode("latin-1") for name in kept - SECRET_HEADERS if name)


def strings(option: str, values: Iterable[str] | str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    try:
        items = list(values)
    except TypeError:
        raise ConfigError(f"{option} must be a list of strings") from None
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{option} must hold strings, got {item!r}")

    return items


def optional_list(option: str, values: Iterable[Any] | None) -> list[Any] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes):
        raise ConfigError(f"{option} must be a list, not a single string")
    try:
        return list(values)
    except TypeError:
        raise ConfigError(f"{option} must be a list") from None


def optional_string(option: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value

    raise ConfigError(f"{option} must be a non-empty string or None, got {value!r}")


def positive_int(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{option} must be a positive integer, got {value!r}")

    return value


def callable_or_none(option: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(f"{option} must be a callable or None, got {value!r}")

    return value
