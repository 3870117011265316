"""KafkaSink: each record's wire JSON as one Kafka message, keyed by data_id."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from ..exceptions import ConfigError, SinkRejected, SinkUnavailable
from ..records import Actual, Prediction, encode

try:
    from confluent_kafka import KafkaError, KafkaException, Producer
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the kafka sink needs confluent-kafka: pip install 'mlf-middleware[kafka]'"
    ) from exc

__all__ = ["KafkaSink"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 9092
DEFAULT_TIMEOUT = 30.0

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's own rule
_HOST = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# librdkafka settings a URL may carry: None takes any text, a tuple lists
# the accepted values, int a whole number. Nothing that would weaken
# delivery (acks, idempotence) or certificate checks is here.
_ALLOWED: dict[str, Any] = {
    "security.protocol": ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"),
    "sasl.mechanism": ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"),
    "ssl.ca.location": None,
    "ssl.certificate.location": None,
    "ssl.key.location": None,
    "client.id": None,
    "compression.type": ("none", "gzip", "snappy", "lz4", "zstd"),
    "linger.ms": int,
    "batch.size": int,
    "batch.num.messages": int,
    "message.max.bytes": int,
}
# Credentials come from environment variables named in the URL and are read
# when the producer is built: URL, logs and reprs only hold the names.
_FROM_ENV = {
    "sasl_username_env": "sasl.username",
    "sasl_password_env": "sasl.password",
    "ssl_key_password_env": "ssl.key.password",
}

# Per-message errors that retrying cannot cure: the record is at fault.
# Every other error (authorisation, unknown topic, timeouts) is the
# cluster's state and means "try later".
_REJECTED = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
    }
)

_HEADERS = {
    kind: [
        ("mlf-type", kind.encode()),
        ("mlf-schema", b"1"),
    ]
    for kind in ("prediction", "actual")
}

_FLUSH_GRACE = 2.0  # seconds past message.timeout.ms before giving up
_CLOSE_WAIT = 1.0  # seconds close() waits for a write in progress
_REMEMBERED_IDS = 65_536


def _never_destroy(producer: Any) -> None:
    """Keep a producer a forked child inherited alive for good.

    librdkafka's threads did not survive the fork, so destroying the
    inherited handle (even at interpreter exit, when module globals are
    cleared) waits forever on a lock those threads held. One reference that
    nothing ever releases keeps its dealloc from running at all.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(producer))


class KafkaSink:
    """Produce each record to a Kafka topic: key data_id, value wire JSON.

    Messages go with ``acks=all`` and idempotence on, keyed by ``data_id``
    (one data_id's records share a partition), with headers ``mlf-type``
    (prediction or actual) and ``mlf-schema``. ``write`` returns once the
    brokers acknowledged the whole batch. It raises ``SinkUnavailable`` when
    a message failed for a reason that may pass or was not acknowledged
    within ``timeout`` seconds, and ``SinkRejected`` listing the records
    Kafka refused (too large). Records acknowledged by an earlier, partly
    failed attempt are not sent again.

    Args:
        bootstrap: broker addresses, ``"host:port"``.
        topic: the topic (Kafka's legal characters, at most 249).
        timeout: seconds a write waits for acknowledgements (30).
        options: librdkafka settings from the whitelist, and
            ``sasl_username_env``, ``sasl_password_env`` and
            ``ssl_key_password_env`` naming environment variables.
    """

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        topic: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        options: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(bootstrap, str):
            bootstrap = bootstrap.split(",")
        self.brokers = [_broker(b) for b in bootstrap]
        self.topic = _check_topic(topic)
        if isinstance(timeout, bool) or not timeout > 0:
            raise ConfigError(f"kafka sink: timeout must be positive, got {timeout!r}")
        self.timeout = float(timeout)
        self.options = {k: _check_option(k, v) for k, v in (options or {}).items()}

        query = dict(sorted(self.options.items()))
        if self.timeout != DEFAULT_TIMEOUT:
            query["timeout"] = f"{self.timeout:g}"
        self.url = f"kafka://{','.join(self.brokers)}/{self.topic}"
        self.url += f"?{urlencode(query)}" if query else ""
        self.name = f"kafka:{self.topic}"
        if (
            "sasl_password_env" in self.options
            and self.options.get("security.protocol") == "sasl_plaintext"
        ):
            log.warning(
                "kafka sink %s: SASL credentials will travel unencrypted "
                "(security.protocol=sasl_plaintext); use sasl_ssl",
                self.name,
            )
        self._reset()

    @classmethod
    def from_url(cls, url: str) -> KafkaSink:
        """Build from ``kafka://host:port[,host:port]/topic?option=value``."""
        if not isinstance(url, str) or not url.lower().startswith("kafka://"):
            raise ConfigError("kafka sink URL must start with kafka://")
        rest, _, query = url[len("kafka://") :].partition("?")
        hosts, _, topic = rest.partition("/")
        if "@" in hosts:
            raise ConfigError(
                "kafka sink URL must not hold credentials: name environment "
                "variables with sasl_username_env= and sasl_password_env="
            )
        if not hosts:
            raise ConfigError("kafka sink URL needs a broker: kafka://host:port/topic")
        if not topic:
            raise ConfigError("kafka sink URL needs a topic: kafka://host:port/topic")

        options: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in options:
                raise ConfigError(f"kafka sink: option {key!r} given twice")
            options[key] = value
        try:
            timeout = float(options.pop("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            raise ConfigError("kafka sink: timeout must be in seconds") from None

        return cls(hosts.split(","), topic, timeout=timeout, options=options)

    def _reset(self) -> None:
        """Forget the producer: at creation and in a forked child."""
        self._lock = threading.Lock()
        self._producer: Any = None
        self._pid = os.getpid()
        self._fatal = False
        self._acked = _RecentIds(_REMEMBERED_IDS)
        self._batch: _Batch | None = None
        self._log = _LibrdkafkaLog(self.name)

    # -- the producer ----------------------------------------------------------

    def _producer_config(self) -> dict[str, Any]:
        """The producer's settings, with credentials read from the environment."""
        config: dict[str, Any] = {"client.id": "mlf-middleware"}
        config.update((k, v) for k, v in self.options.items() if k not in _FROM_ENV)
        for option, setting in _FROM_ENV.items():
            variable = self.options.get(option)
            if variable is None:
                continue
            value = os.environ.get(variable)
            if not value:
                raise SinkUnavailable(
                    f"kafka sink {self.name}: environment variable "
                    f"{variable} is not set"
                )
            config[setting] = value

        config.update(
            {
                "bootstrap.servers": ",".join(self.brokers),
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": max(1, int(self.timeout * 1000)),
                # The Java client's partitioner: keys land where JVM
                # producers of the same topic would put them.
                "partitioner": "murmur2_random",
                "logger": self._log,
                "error_cb": self._on_error,
                "on_delivery": self._on_delivery,
                "delivery.report.only.error": True,
            }
        )
        return config

    def _client(self) -> Any:
        """This process's producer, built on first use in the writing thread."""
        if self._pid != os.getpid():
            self.after_fork()
        if self._producer is not None and self._fatal:
            log.warning("kafka sink %s: fatal producer error; rebuilding", self.name)
            self._producer = None
        if self._producer is None:
            self._fatal = False
            try:
                self._producer = Producer(self._producer_config())
            except KafkaException as exc:
                raise SinkUnavailable(
                    f"kafka sink {self.name}: cannot build a producer "
                    f"({exc.args[0].name()})"
                ) from None
        return self._producer

    def _on_error(self, error: Any) -> None:
        if error.fatal():
            self._fatal = True
        self._log.warn_once(
            f"error:{error.name()}", "kafka sink %s: %s", self.name, error.name()
        )

    def after_fork(self) -> None:
        """Forget the parent's producer; this process builds its own."""
        if self._producer is not None:
            _never_destroy(self._producer)
        self._reset()

    # -- writing ---------------------------------------------------------------

    def write(self, records: Sequence[Prediction | Actual]) -> None:
        self._refuse(records, self._send([encode(r) for r in records]))

    def write_wire(self, lines: Sequence[bytes]) -> None:
        self._refuse(lines, self._send(lines))

    def _refuse(self, items: Sequence[Any], rejected: list[int]) -> None:
        if rejected:
            raise SinkRejected(
                f"kafka sink {self.name}: {len(rejected)} records refused "
                "(too large or invalid)",
                records=tuple(items[i] for i in sorted(rejected)),
            )

    def _send(self, lines: Sequence[bytes]) -> list[int]:
        """Produce and await ``lines``; return the indexes Kafka refused."""
        batch = _Batch(lines)
        with self._lock:
            producer = self._client()
            self._batch = batch
            try:
                self._produce_all(producer, batch)
                settled = self._await(producer)
            finally:
                self._batch = None
            acked, failed = batch.outcome(settled)
            for record_id in acked:
                self._acked.add(record_id)

        if failed:
            raise SinkUnavailable(
                f"kafka sink {self.name}: {failed} of {len(lines)} "
                f"messages not delivered ({batch.first_error()})"
            )
        return batch.rejected

    def _produce_all(self, producer: Any, batch: _Batch) -> None:
        deadline = time.monotonic() + self.timeout
        for index, line in enumerate(batch.lines):
            head = orjson.loads(line)
            record_id = head["record_id"]
            if record_id in self._acked:
                continue  # acknowledged by an earlier attempt

            key, kind = head["data_id"].encode(), head["type"]
            try:
                _produce(producer, self.topic, line, key, kind, deadline)
            except KafkaException as exc:
                batch.refused(index, exc.args[0])
                if exc.args[0].code() not in _REJECTED:
                    batch.unsent = len(batch.lines) - index  # this and the rest
                    return
            else:
                batch.sent[index] = record_id

    def _on_delivery(self, error: Any, msg: Any) -> None:
        # Reports come for failures only (delivery.report.only.error): once
        # flush() has drained them, every other message was acknowledged.
        if error.fatal():
            self._fatal = True
        if self._batch is not None:
            self._batch.failures.append((msg.value(), error))

    def _await(self, producer: Any) -> bool:
        """Wait for every delivery report; True when none is missing."""
        if producer.flush(self.timeout + _FLUSH_GRACE) == 0:
            return True
        # Not even timed out yet: drop what never left, so that a retry of
        # this batch cannot race a late copy of it.
        producer.purge(in_queue=True, in_flight=False)
        return producer.flush(_FLUSH_GRACE) == 0

    def close(self) -> None:
        """Wait (up to ``timeout``) for messages still queued, then let go."""
        if not self._lock.acquire(timeout=_CLOSE_WAIT):
            # A write is still waiting on the brokers (the pipeline gave up
            # on it): it keeps the producer, librdkafka settles its messages.
            log.warning("kafka sink %s: closed during a write", self.name)
            return
        try:
            producer, self._producer = self._producer, None
            if producer is None or self._pid != os.getpid():
                return
            left = producer.flush(self.timeout)
        finally:
            self._lock.release()

        if left:
            log.warning(
                "kafka sink %s: closed with %d messages unacknowledged",
                self.name,
                left,
            )

    # -- configuration as state ------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(type(self).from_url(state["url"]).__dict__)

    def __repr__(self) -> str:
        return f"KafkaSink({self.url!r})"


class _Batch:
    """One write: what was sent, and what the delivery reports said."""

    def __init__(self, lines: Sequence[bytes]) -> None:
        self.lines = lines
        self.sent: dict[int, str] = {}  # index -> record_id
        self.unsent = 0  # messages never queued after a local failure
        self.rejected: list[int] = []
        self.failures: list[tuple[bytes, Any]] = []  # (value, error) reports
        self._errors: list[Any] = []

    def refused(self, index: int, error: Any) -> None:
        """File a failed message: refused for good, or worth another try."""
        if error.code() in _REJECTED:
            self.rejected.append(index)
        else:
            self._errors.append(error)

    def outcome(self, settled: bool) -> tuple[list[str], int]:
        """The record_ids acknowledged, and how many were not delivered."""
        where = {self.lines[i]: i for i in self.sent} if self.failures else {}
        reported = {
            where[value]: error
            for value, error in self.failures
            if value in where  # else a straggler of an earlier write
        }
        for index, error in reported.items():
            self.refused(index, error)
        if not settled:
            return [], len(self.sent) + self.unsent  # which ones is unknown

        acked = [rid for i, rid in self.sent.items() if i not in reported]
        retriable = sum(1 for e in reported.values() if e.code() not in _REJECTED)
        return acked, retriable + self.unsent

    def first_error(self) -> str:
        return self._errors[0].name() if self._errors else "no acknowledgement"


class _RecentIds:
    """A bounded set of the record ids most recently acknowledged."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def add(self, record_id: str) -> None:
        if record_id in self._ids:
            return
        self._ids.add(record_id)
        self._order.append(record_id)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._ids


class _LibrdkafkaLog:
    """librdkafka's log lines into logging; warnings once per 10 s per kind."""

    interval = 10.0

    def __init__(self, sink: str) -> None:
        self._sink = sink
        self._last: dict[str, float] = {}

    def log(self, level: int, _fmt: str, facility: str, _rk: str, text: str) -> None:
        if level >= logging.WARNING and not self._due(f"{level}:{facility}"):
            return
        log.log(level, "kafka sink %s: librdkafka %s: %s", self._sink, facility, text)

    def warn_once(self, key: str, msg: str, *args: object) -> None:
        if self._due(key):
            log.warning(msg, *args)

    def _due(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.interval:
            return False
        self._last[key] = now
        return True


def _produce(
    producer: Any, topic: str, value: bytes, key: bytes, kind: str, deadline: float
) -> None:
    """Produce one message, waiting while librdkafka's local queue is full."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=_HEADERS[kind])
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise SinkUnavailable("kafka sink: local queue stayed full") from None
            producer.poll(0.05)


def _broker(text: str) -> str:
    """``host:port`` checked; the port defaults to 9092."""
    host, port = text.strip(), str(DEFAULT_PORT)
    bracketed = host.startswith("[")  # [ipv6] or [ipv6]:port
    if (bracketed and "]:" in host) or (not bracketed and ":" in host):
        host, _, port = host.rpartition(":")
    if not _HOST.match(host):
        raise ConfigError(f"kafka sink: bad broker host {host!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"kafka sink: bad port {port!r} for broker {host}")

    return f"{host}:{int(port)}"


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str) or topic in (".", "..") or not _TOPIC.match(topic):
        raise ConfigError(
            f"kafka sink: bad topic {topic!r:.60}: use 1 to 249 of "
            "A-Z a-z 0-9 . _ -, and not '.' or '..'"
        )
    return topic


def _check_option(key: str, value: str) -> str:
    """Return the option's value in librdkafka's spelling, or raise."""
    if key in _FROM_ENV.values():
        raise ConfigError(
            f"kafka sink: {key} must not be in the URL; name an environment "
            f"variable with {key.replace('.', '_')}_env="
        )
    if key in _FROM_ENV:
        if not _ENV_NAME.match(value):
            raise ConfigError(f"kafka sink: {key} must name an environment variable")
        return value
    if key not in _ALLOWED:
        allowed = ", ".join(sorted([*_ALLOWED, *_FROM_ENV, "timeout"]))
        raise ConfigError(f"kafka sink: unknown option {key!r} (allowed: {allowed})")

    check = _ALLOWED[key]
    if check is int and not value.isdigit():
        raise ConfigError(f"kafka sink: {key} must be a whole number")
    if isinstance(check, tuple):
        for choice in check:
            if value.lower() == choice.lower():
                return choice
        raise ConfigError(f"kafka sink: {key} must be one of {', '.join(check)}")
    if not value:
        raise ConfigError(f"kafka sink: {key} must not be empty")
    return value
