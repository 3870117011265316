"""HTTPSink: batches of records POSTed to a collector, as JSON or CloudEvents."""

from __future__ import annotations

import gzip
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from ..exceptions import ConfigError, SinkRejected, SinkUnavailable
from ..records import Actual, Prediction, encode

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the http sink needs httpx: pip install 'mlf-middleware[http]'"
    ) from exc

__all__ = ["HTTPSink", "retry_after_seconds"]

log = logging.getLogger(__name__)

FORMATS = ("json", "cloudevents")
CLOUDEVENT_TYPES = {"prediction": b'"mlf.prediction"', "actual": b'"mlf.actual"'}

# Status handling (SPEC section 6): these mean the batch holds records the
# collector will never take, so the pipeline splits it. Every other non-2xx
# answer (5xx, 408, 429, 401, 403, 404, redirects, the rest of 4xx) means
# "try later": it is the collector's state, not the records' fault.
REJECTING = frozenset({400, 413, 422})

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_BODY_LIMIT = 64 * 1024  # bytes of a response read so the connection is reused
_OPTIONS = (
    "format",
    "gzip",
    "auth_env",
    "auth_scheme",
    "auth_header",
    "timeout",
    "source",
    "verify",
    "ca_file",
)


class HTTPSink:
    """POST each batch of records to a collector.

    ``format="json"`` sends a JSON array of wire records
    (``application/json``); ``"cloudevents"`` sends a CloudEvents 1.0 batch
    (``application/cloudevents-batch+json``), one event per record with the
    record as ``data``. A 2xx answer means delivered. 400, 413 and 422 raise
    ``SinkRejected`` (the pipeline splits the batch, a lone record goes to
    the dead-letter file); any other answer, a redirect (never followed), a
    refused connection or a timeout raises ``SinkUnavailable``, with the
    ``Retry-After`` delay when the collector gave one.

    Args:
        endpoint: the collector's ``http(s)://host:port/path``.
        format: ``"json"`` (default) or ``"cloudevents"``.
        gzip: compress request bodies (``Content-Encoding: gzip``).
        auth_env: environment variable holding the credential, read at
            every write; never stored, logged or shown.
        auth_scheme: written before the credential ("Bearer"); "" sends
            the bare value.
        auth_header: the header carrying it ("Authorization").
        timeout: seconds allowed for each request (10).
        source: the CloudEvents ``source`` attribute ("mlf-middleware").
        verify: check the collector's TLS certificate (True). False logs a
            WARNING: anyone on the path could read and change the records.
        ca_file: a CA bundle to verify the collector against.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        format: str = "json",
        gzip: bool = False,
        auth_env: str | None = None,
        auth_scheme: str = "Bearer",
        auth_header: str = "Authorization",
        timeout: float = 10.0,
        source: str = "mlf-middleware",
        verify: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.endpoint, host = _check_endpoint(endpoint)
        _check_choices(format, auth_env, auth_scheme, auth_header, source)
        if isinstance(timeout, bool) or not timeout > 0:
            raise ConfigError(f"http sink: timeout must be positive, got {timeout!r}")
        if ca_file is not None and not os.path.isabs(ca_file):
            raise ConfigError("http sink: ca_file must be an absolute path")
        self.format, self.gzip, self.timeout = format, bool(gzip), float(timeout)
        self.auth_env, self.auth_scheme = auth_env, auth_scheme
        self.auth_header, self.source = auth_header, source
        self.verify, self.ca_file = bool(verify), ca_file

        self.name = "http:" + self.endpoint.split("://", 1)[1]
        self.url = self.endpoint + _query(self._settings())
        self._source = orjson.dumps(source)
        self._warn_if_exposed(host)
        self._reset()

    @classmethod
    def from_url(cls, url: str) -> HTTPSink:
        """Build from ``http(s)://host:port/path?format=...&gzip=...``."""
        if not isinstance(url, str):
            raise ConfigError("http sink URL must be a string")
        endpoint, _, query = url.partition("?")
        options: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in _OPTIONS:
                raise ConfigError(
                    f"http sink: unknown option {key!r} "
                    f"(allowed: {', '.join(sorted(_OPTIONS))})"
                )
            if key in options:
                raise ConfigError(f"http sink: option {key!r} given twice")
            options[key] = value

        return cls(endpoint, **_typed(options))

    def _settings(self) -> dict[str, Any]:
        """The options that differ from the defaults (no secret among them)."""
        defaults = {
            "format": "json",
            "gzip": False,
            "auth_env": None,
            "auth_scheme": "Bearer",
            "auth_header": "Authorization",
            "timeout": 10.0,
            "source": "mlf-middleware",
            "verify": True,
            "ca_file": None,
        }
        return {
            key: getattr(self, key)
            for key, default in defaults.items()
            if getattr(self, key) != default
        }

    def _warn_if_exposed(self, host: str) -> None:
        if not self.verify:
            log.warning(
                "http sink %s: TLS verification is OFF (verify=false): the "
                "collector's identity is not checked",
                self.name,
            )
        if (
            self.auth_env
            and self.endpoint.startswith("http://")
            and host not in _LOOPBACK
        ):
            log.warning(
                "http sink %s: the credential from %s travels unencrypted "
                "over http://; use https://",
                self.name,
                self.auth_env,
            )

    def _reset(self) -> None:
        """Forget the client: at creation and in a forked child."""
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._pid = os.getpid()
        self._last_warning: dict[int, float] = {}

    # -- the client ------------------------------------------------------------

    def _client(self) -> httpx.Client:
        """This process's client, built on first use."""
        if self._pid != os.getpid():
            self.after_fork()
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    verify=self._tls(),
                    timeout=self.timeout,
                    follow_redirects=False,  # a redirected POST is a failure
                    headers={"user-agent": "mlf-middleware"},
                )
            return self._http

    def _tls(self) -> ssl.SSLContext | bool:
        if not self.verify:
            return False
        if self.ca_file is None:
            return True
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SinkUnavailable(
                f"http sink {self.name}: cannot load ca_file ({type(exc).__name__})"
            ) from None

    def after_fork(self) -> None:
        """Forget the parent's connections; this process opens its own."""
        self._reset()

    def close(self) -> None:
        with self._lock:
            client, self._http = self._http, None
        if client is not None and self._pid == os.getpid():
            client.close()

    # -- writing ---------------------------------------------------------------

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self.write_wire([encode(r) for r in records])

    def write_wire(self, lines: Sequence[bytes]) -> None:
        if not lines:
            return
        if self.format == "cloudevents":
            body = b"[" + b",".join(self._event(line) for line in lines) + b"]"
            headers = {"content-type": "application/cloudevents-batch+json"}
        else:
            body = b"[" + b",".join(lines) + b"]"
            headers = {"content-type": "application/json"}
        if self.gzip:
            # Level 1: most of the saving on JSON for a fraction of the CPU.
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["content-encoding"] = "gzip"
        credential = self._credential()
        if credential is not None:
            headers[self.auth_header] = credential

        status, retry_after = self._post(body, headers)
        self._judge(status, retry_after)

    def _event(self, line: bytes) -> bytes:
        """One CloudEvent around a wire record, built without re-encoding it."""
        head = orjson.loads(line)
        return b"".join(
            (
                b'{"specversion":"1.0","id":',
                orjson.dumps(head["record_id"]),
                b',"source":',
                self._source,
                b',"type":',
                CLOUDEVENT_TYPES[head["type"]],
                b',"subject":',
                orjson.dumps(head["data_id"]),
                b',"time":',
                orjson.dumps(head["occurred_at"]),
                b',"datacontenttype":"application/json","data":',
                line,
                b"}",
            )
        )

    def _credential(self) -> str | None:
        if self.auth_env is None:
            return None
        value = os.environ.get(self.auth_env, "").strip()
        if not value:
            raise SinkUnavailable(
                f"http sink {self.name}: environment variable {self.auth_env} "
                "is not set"
            )
        return f"{self.auth_scheme} {value}" if self.auth_scheme else value

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        client = self._client()
        try:
            with client.stream(
                "POST", self.endpoint, content=body, headers=headers
            ) as response:
                _drain(response)
                return response.status_code, response.headers.get("retry-after")
        except httpx.TimeoutException as exc:
            raise SinkUnavailable(
                f"http sink {self.name}: timed out ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise SinkUnavailable(
                f"http sink {self.name}: request failed ({type(exc).__name__})"
            ) from exc

    def _judge(self, status: int, retry_after: str | None) -> None:
        """Map the collector's answer to delivered, rejected or unavailable."""
        if 200 <= status < 300:
            return
        if status in REJECTING:
            raise SinkRejected(f"http sink {self.name}: collector answered {status}")

        reason = f"collector answered {status}"
        if 300 <= status < 400:
            reason += " (a redirect, never followed for a POST: fix the URL)"
        self._warn(status, reason)
        raise SinkUnavailable(
            f"http sink {self.name}: {reason}",
            retry_after=retry_after_seconds(retry_after),
        )

    def _warn(self, status: int, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(status, -1e9) >= 60.0:
            self._last_warning[status] = now
            log.warning("http sink %s: %s; will retry", self.name, reason)

    # -- configuration as state ------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(type(self).from_url(state["url"]).__dict__)

    def __repr__(self) -> str:
        return f"HTTPSink({self.url!r})"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delay or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)

    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _drain(response: httpx.Response) -> None:
    """Read a little of the answer; a longer one closes the connection."""
    seen = 0
    for chunk in response.iter_raw():
        seen += len(chunk)
        if seen > _BODY_LIMIT:
            return


def _check_endpoint(endpoint: str) -> tuple[str, str]:
    """Return the endpoint in normal form and its host, or raise."""
    parts = urlsplit(endpoint)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError("http sink URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise ConfigError(
            "http sink URL must not hold credentials: name an environment "
            "variable with auth_env="
        )
    if not parts.hostname:
        raise ConfigError("http sink URL needs a host: http://host:port/path")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("http sink: bad port in the URL") from None
    if port == 0:
        raise ConfigError("http sink: bad port 0 in the URL")
    if parts.fragment or parts.query:
        raise ConfigError("http sink: the endpoint takes no query or fragment")

    normal = urlunsplit((scheme, parts.netloc.lower(), parts.path or "/", "", ""))
    return normal, parts.hostname


def _check_choices(
    format: str, auth_env: str | None, scheme: str, header: str, source: str
) -> None:
    if format not in FORMATS:
        raise ConfigError(f"http sink: format must be one of {', '.join(FORMATS)}")
    if auth_env is not None and not _ENV_NAME.match(auth_env):
        raise ConfigError("http sink: auth_env must name an environment variable")
    if scheme and not _TOKEN.match(scheme):
        raise ConfigError("http sink: auth_scheme must be a single word")
    if not _TOKEN.match(header):
        raise ConfigError("http sink: auth_header must be a header name")
    if not source:
        raise ConfigError("http sink: source must not be empty")


def _typed(options: dict[str, str]) -> dict[str, Any]:
    typed: dict[str, Any] = dict(options)
    for key in ("gzip", "verify"):
        if key in typed:
            typed[key] = _boolean(key, typed[key])
    if "timeout" in typed:
        try:
            typed["timeout"] = float(typed["timeout"])
        except ValueError:
            raise ConfigError("http sink: timeout must be in seconds") from None
    return typed


def _boolean(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"http sink: {key} must be true or false")


def _query(settings: dict[str, Any]) -> str:
    """The settings as a query string, in the spelling from_url reads."""
    shown = {}
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, float):
            value = f"{value:g}"
        shown[key] = value
    return f"?{urlencode(shown)}" if shown else ""
