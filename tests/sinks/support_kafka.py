"""librdkafka's mock cluster for the Kafka sink tests, and a topic reader.

``MockCluster`` drives the mock through the C functions the bundled
librdkafka exports (reached with ctypes): topics with a chosen partition
count, injected request errors, brokers taken down and up. Where those
symbols are missing, ``mock_cluster()`` falls back to the cluster a
``Producer`` starts with ``test.mock.num.brokers`` (topics then get the
mock's default partitions and nothing can be injected).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import confluent_kafka
import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from mlf_middleware.records import Actual, Prediction, from_wire
from mlf_middleware.sinks.kafka import KafkaSink

__all__ = [
    "PRODUCE",
    "MockCluster",
    "ProducerCluster",
    "injection_available",
    "make_sink_and_reader",
    "mock_cluster",
    "read_messages",
    "read_records",
]

PRODUCE = 0  # Kafka's ApiKey of the Produce request

_SYMBOLS = (
    "rd_kafka_mock_cluster_new",
    "rd_kafka_mock_cluster_bootstraps",
    "rd_kafka_mock_topic_create",
    "rd_kafka_mock_push_request_errors_array",
    "rd_kafka_mock_broker_set_down",
    "rd_kafka_mock_broker_set_up",
    "rd_kafka_mock_cluster_destroy",
)


def _load_librdkafka() -> Any | None:
    """The librdkafka that confluent_kafka itself loaded, or None."""
    package = os.path.dirname(confluent_kafka.__file__)
    bundled = os.path.join(package, "..", "confluent_kafka.libs", "librdkafka*")
    paths = glob.glob(bundled)
    path = paths[0] if paths else ctypes.util.find_library("rdkafka")
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    if not all(hasattr(lib, name) for name in _SYMBOLS):
        return None
    return _declare(lib)


def _declare(lib: Any) -> Any:
    vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_push_request_errors_array.restype = None
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        vp, ctypes.c_int16, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int),
    ]
    lib.rd_kafka_mock_broker_set_down.restype = ctypes.c_int
    lib.rd_kafka_mock_broker_set_down.argtypes = [vp, i32]
    lib.rd_kafka_mock_broker_set_up.restype = ctypes.c_int
    lib.rd_kafka_mock_broker_set_up.argtypes = [vp, i32]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    return lib


_LIB = _load_librdkafka()


def injection_available() -> bool:
    """True when the rd_kafka_mock_* functions can be called."""
    return _LIB is not None


class MockCluster:
    """A mock cluster owned through librdkafka's C API."""

    def __init__(self, brokers: int = 1) -> None:
        if _LIB is None:
            raise RuntimeError("librdkafka's rd_kafka_mock_* symbols are missing")
        errstr = ctypes.create_string_buffer(512)
        conf = _LIB.rd_kafka_conf_new()
        _LIB.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, 512)
        # RD_KAFKA_PRODUCER = 0; the handle only hosts the mock's threads.
        self._rk = _LIB.rd_kafka_new(0, conf, errstr, 512)
        if not self._rk:
            raise RuntimeError(errstr.value.decode())
        self._mock = _LIB.rd_kafka_mock_cluster_new(self._rk, brokers)
        self.bootstrap = _LIB.rd_kafka_mock_cluster_bootstraps(self._mock).decode()

    def create_topic(self, name: str, partitions: int = 1) -> None:
        err = _LIB.rd_kafka_mock_topic_create(self._mock, name.encode(), partitions, 1)
        if err:
            raise RuntimeError(f"mock topic_create failed: {err}")

    def push_errors(self, api_key: int, *codes: int) -> None:
        """Answer the next ``len(codes)`` requests of ``api_key`` with errors."""
        array = (ctypes.c_int * len(codes))(*codes)
        _LIB.rd_kafka_mock_push_request_errors_array(
            self._mock, api_key, len(codes), array
        )

    def broker_down(self, broker_id: int = 1) -> None:
        _LIB.rd_kafka_mock_broker_set_down(self._mock, broker_id)

    def broker_up(self, broker_id: int = 1) -> None:
        _LIB.rd_kafka_mock_broker_set_up(self._mock, broker_id)

    def close(self) -> None:
        if self._mock:
            _LIB.rd_kafka_mock_cluster_destroy(self._mock)
            _LIB.rd_kafka_destroy(self._rk)
            self._mock = self._rk = None


class ProducerCluster:
    """The fallback: the mock a Producer starts with test.mock.num.brokers."""

    def __init__(self) -> None:
        self._owner = Producer({"test.mock.num.brokers": 1, "log_level": 3})
        broker = next(iter(self._owner.list_topics(timeout=10).brokers.values()))
        self.bootstrap = f"{broker.host}:{broker.port}"

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Topics are created on first use, with the mock's default partitions."""

    def close(self) -> None:
        self._owner = None


@contextmanager
def mock_cluster() -> Iterator[Any]:
    """A fresh mock cluster for the duration."""
    cluster = MockCluster() if injection_available() else ProducerCluster()
    try:
        yield cluster
    finally:
        cluster.close()


def read_messages(
    bootstrap: str, topic: str, *, timeout: float = 10.0
) -> list[Any]:
    """Every message in ``topic``, partition by partition, with assign()."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if meta.error is not None:
            return []  # nothing was ever produced
        ends = {}
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=timeout
            )
            if high > low:
                ends[p] = (low, high)
        consumer.assign([TopicPartition(topic, p, lo) for p, (lo, _) in ends.items()])
        return _poll_all(consumer, ends, time.monotonic() + timeout)
    finally:
        consumer.close()


def _poll_all(consumer: Any, ends: dict[int, tuple[int, int]], deadline: float) -> list:
    got: dict[int, list[Any]] = {p: [] for p in ends}
    pending = set(ends)
    while pending and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            if msg is not None and msg.error().code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(msg.error().str())
            continue
        got[msg.partition()].append(msg)
        if msg.offset() + 1 >= ends[msg.partition()][1]:
            pending.discard(msg.partition())
    if pending:
        raise TimeoutError(f"partitions {sorted(pending)} not read to the end")
    return [m for p in sorted(got) for m in got[p]]


def read_records(
    bootstrap: str, topic: str, *, timeout: float = 10.0
) -> list[Prediction | Actual]:
    """The records in ``topic``, each record_id once (first copy kept)."""
    seen: set[str] = set()
    out: list[Prediction | Actual] = []
    for msg in read_messages(bootstrap, topic, timeout=timeout):
        obj = orjson.loads(msg.value())
        if obj["record_id"] not in seen:
            seen.add(obj["record_id"])
            out.append(from_wire(obj))
    return out


_shared: list[Any] = []


def _shared_cluster() -> Any:
    # One cluster for the contract suite: a fresh topic per sink is enough.
    if not _shared:
        _shared.append(MockCluster() if injection_available() else ProducerCluster())
    return _shared[0]


@contextmanager
def make_sink_and_reader() -> Iterator[
    tuple[KafkaSink, Callable[[], list[Prediction | Actual]]]
]:
    """A KafkaSink on a fresh one-partition topic of a mock cluster, and a
    reader returning the records delivered so far (each record_id once)."""
    cluster = _shared_cluster()
    topic = f"contract-{uuid.uuid4().hex[:12]}"
    cluster.create_topic(topic, partitions=1)
    sink = KafkaSink.from_url(f"kafka://{cluster.bootstrap}/{topic}?timeout=10")
    try:
        yield sink, lambda: read_records(cluster.bootstrap, topic)
    finally:
        sink.close()
