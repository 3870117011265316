"""KafkaSink against librdkafka's mock cluster (see support_kafka.py)."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import KafkaError
from support_kafka import (
    PRODUCE,
    MockCluster,
    injection_available,
    make_sink_and_reader,
    mock_cluster,
    read_messages,
    read_records,
)

from mlf_middleware import Actual, Prediction, Recorder
from mlf_middleware.exceptions import (
    ConfigError,
    SinkRejected,
    SinkUnavailable,
)
from mlf_middleware.records import encode
from mlf_middleware.sinks import KafkaSink, open_sink

T = datetime(2024, 3, 1, 12, tzinfo=UTC)

needs_injection = pytest.mark.skipif(
    not injection_available(),
    reason="this librdkafka does not export the rd_kafka_mock_* functions",
)


def prediction(data_id, value=1, *, size=0):
    return Prediction(
        data_id,
        {"x": value, "pad": "p" * size},
        {"value": value, "probabilities": {"a": 0.25, "b": 0.75}},
        occurred_at=T,
        model_version_fqn="m:1",
        latency_ms=2.5,
    )


@pytest.fixture
def cluster():
    with mock_cluster() as c:
        yield c


@pytest.fixture
def topic(cluster):
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(name, partitions=1)
    return name


def sink_for(cluster, topic, query="timeout=10"):
    return KafkaSink.from_url(f"kafka://{cluster.bootstrap}/{topic}?{query}")


# -- the URL ------------------------------------------------------------------


def test_url_names_brokers_topic_and_options():
    sink = open_sink(
        "kafka://k1:9093,k2/preds.v1?compression.type=ZSTD&timeout=5"
        "&sasl_password_env=KAFKA_PW&security.protocol=SASL_SSL"
    )

    assert isinstance(sink, KafkaSink)
    assert sink.brokers == ["k1:9093", "k2:9092"]
    assert sink.topic == "preds.v1"
    assert sink.timeout == 5.0
    assert sink.options == {
        "compression.type": "zstd",
        "sasl_password_env": "KAFKA_PW",
        "security.protocol": "sasl_ssl",
    }
    assert sink.name == "kafka:preds.v1"
    assert sink.url == (
        "kafka://k1:9093,k2:9092/preds.v1?compression.type=zstd"
        "&sasl_password_env=KAFKA_PW&security.protocol=sasl_ssl&timeout=5"
    )


def test_ipv6_broker_keeps_its_brackets():
    sink = KafkaSink.from_url("kafka://[::1]:9094/t")

    assert sink.brokers == ["[::1]:9094"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka:///topic", "needs a broker"),
        ("kafka://host:9092", "needs a topic"),
        ("kafka://host:9092/", "needs a topic"),
        ("kafka://host:x/t", "bad port 'x'"),
        ("kafka://host:0/t", "bad port '0'"),
        ("kafka://host:65536/t", "bad port '65536'"),
        ("kafka://ho st:1/t", "bad broker host"),
        ("kafka://user:secret@host:1/t", "must not hold credentials"),
        ("kafka://h/bad/topic", "bad topic"),
        ("kafka://h/top!c", "bad topic"),
        ("kafka://h/..", "bad topic"),
        ("kafka://h/" + "t" * 250, "bad topic"),
        ("kafka://h/t?acks=1", "unknown option 'acks'"),
        ("kafka://h/t?enable.idempotence=false", "unknown option"),
        ("kafka://h/t?sasl.password=hunter2", "must not be in the URL"),
        ("kafka://h/t?compression.type=brotli", "compression.type must be one"),
        ("kafka://h/t?linger.ms=soon", "linger.ms must be a whole number"),
        ("kafka://h/t?sasl_password_env=1BAD", "name an environment variable"),
        ("kafka://h/t?timeout=0", "timeout must be positive"),
        ("kafka://h/t?timeout=abc", "timeout must be in seconds"),
        ("kafka://h/t?linger.ms=1&linger.ms=2", "given twice"),
    ],
)
def test_bad_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        KafkaSink.from_url(url)

    assert "secret" not in str(info.value)
    assert "hunter2" not in str(info.value)


def test_longest_legal_topic_is_accepted():
    assert KafkaSink.from_url("kafka://h/" + "t" * 249).topic == "t" * 249


def test_credentials_come_from_environment_at_build_time(monkeypatch):
    sink = KafkaSink.from_url(
        "kafka://h:1/t?security.protocol=sasl_ssl&sasl.mechanism=scram-sha-512"
        "&sasl_username_env=K_USER&sasl_password_env=K_PASS"
    )
    monkeypatch.setenv("K_USER", "alice")
    monkeypatch.setenv("K_PASS", "s3cr3t-value")

    config = sink._producer_config()

    assert config["sasl.username"] == "alice"
    assert config["sasl.password"] == "s3cr3t-value"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    for shown in (sink.url, sink.name, repr(sink), str(pickle.dumps(sink))):
        assert "s3cr3t" not in shown


def test_missing_credential_variable_is_unavailable_not_logged(monkeypatch):
    monkeypatch.delenv("K_PASS", raising=False)
    sink = KafkaSink.from_url("kafka://h:1/t?sasl_password_env=K_PASS")

    with pytest.raises(SinkUnavailable, match="environment variable K_PASS is not set"):
        sink.write([prediction("d1")])


def test_plaintext_sasl_credentials_log_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="mlf_middleware.sinks.kafka"):
        KafkaSink.from_url(
            "kafka://h:1/t?security.protocol=sasl_plaintext&sasl_password_env=P"
        )

    assert "unencrypted" in caplog.text


# -- writing ------------------------------------------------------------------


def test_write_produces_keyed_messages_with_type_headers(cluster, topic):
    sink = sink_for(cluster, topic)
    records = [prediction("d1", 1), Actual("d1", 0, occurred_at=T), prediction("d2")]

    sink.write(records)
    sink.close()

    messages = read_messages(cluster.bootstrap, topic)
    assert [m.key() for m in messages] == [b"d1", b"d1", b"d2"]
    assert [m.value() for m in messages] == [encode(r) for r in records]
    assert [m.headers() for m in messages] == [
        [("mlf-type", kind), ("mlf-schema", b"1")]
        for kind in (b"prediction", b"actual", b"prediction")
    ]


def test_write_wire_sends_the_given_bytes(cluster, topic):
    sink = sink_for(cluster, topic)
    lines = [encode(prediction("d1")), encode(Actual("d1", "yes", occurred_at=T))]

    sink.write_wire(lines)

    assert [m.value() for m in read_messages(cluster.bootstrap, topic)] == lines
    sink.close()


def test_repeats_from_another_sink_are_dropped_by_readers(cluster, topic):
    sink, other = sink_for(cluster, topic), sink_for(cluster, topic)
    records = [prediction("d1"), Actual("d1", 1, occurred_at=T)]

    sink.write(records)
    other.write(records)  # no memory of the first sink's acknowledgements

    assert len(read_messages(cluster.bootstrap, topic)) == 2 * len(records)
    assert read_records(cluster.bootstrap, topic) == records
    sink.close()
    other.close()


def test_retried_batch_is_not_sent_again(cluster, topic):
    sink = sink_for(cluster, topic)
    batch = [prediction("d1"), prediction("d2")]

    sink.write(batch)
    sink.write(batch)

    assert len(read_messages(cluster.bootstrap, topic)) == 2
    sink.close()


def test_record_over_message_max_bytes_is_rejected_alone(cluster, topic):
    sink = sink_for(cluster, topic, "message.max.bytes=1000&timeout=10")
    small, big, last = prediction("s1"), prediction("big", size=2000), prediction("s2")

    with pytest.raises(SinkRejected) as info:
        sink.write([small, big, last])

    assert info.value.records == (big,)
    assert [m.key() for m in read_messages(cluster.bootstrap, topic)] == [b"s1", b"s2"]
    sink.close()


@needs_injection
def test_retriable_broker_errors_are_retried_within_write(cluster, topic):
    sink = sink_for(cluster, topic)
    records = [prediction(f"d{i}", i) for i in range(5)]
    cluster.push_errors(PRODUCE, *[KafkaError.NOT_ENOUGH_REPLICAS] * 3)

    sink.write(records)

    messages = read_messages(cluster.bootstrap, topic)
    assert [m.value() for m in messages] == [encode(r) for r in records]
    sink.close()


@needs_injection
def test_broker_refusing_size_raises_rejected(cluster, topic):
    sink = sink_for(cluster, topic)
    sink.write([prediction("d0")])  # connected and idle
    record = prediction("d1")
    cluster.push_errors(PRODUCE, KafkaError.MSG_SIZE_TOO_LARGE)

    with pytest.raises(SinkRejected) as info:
        sink.write_wire([encode(record)])
    sink.write([prediction("d2")])

    assert info.value.records == (encode(record),)
    assert [m.key() for m in read_messages(cluster.bootstrap, topic)] == [b"d0", b"d2"]
    sink.close()


@needs_injection
def test_broker_down_write_raises_unavailable(cluster, topic):
    sink = sink_for(cluster, topic, "timeout=0.5")
    cluster.broker_down()

    with pytest.raises(SinkUnavailable, match="1 of 1 messages not delivered"):
        sink.write([prediction("d1")])

    cluster.broker_up()
    sink.close()


@needs_injection
def test_recorder_delivers_each_record_once_after_broker_returns(cluster, topic):
    sink = sink_for(cluster, topic, "timeout=0.5")
    recorder = Recorder(sink, batch_size=20, max_delay=0.01)
    cluster.broker_down()
    records = [prediction(f"d{i}", i) for i in range(60)]

    recorder.log_predictions(records)
    assert recorder.flush(timeout=1.0) is False
    cluster.broker_up()
    assert recorder.flush(timeout=30) is True
    stats = recorder.close(timeout=10)

    messages = read_messages(cluster.bootstrap, topic)
    ids = [r.record_id for r in read_records(cluster.bootstrap, topic)]
    assert len(messages) == len(records)  # not one repeat
    assert sorted(ids) == sorted(r.record_id for r in records)
    assert stats["written"] == 60
    assert stats["failed_writes"] >= 1
    assert stats["dropped"] == stats["rejected"] == stats["queue_size"] == 0
    assert stats["spooled"] == 0


def test_recorder_dead_letters_the_oversized_record(cluster, topic, tmp_path):
    sink = sink_for(cluster, topic, "message.max.bytes=1000&timeout=10")
    recorder = Recorder(sink, batch_size=50, max_delay=0.01)
    records = [prediction(f"d{i}") for i in range(7)]
    records.insert(3, prediction("big", size=3000))

    recorder.log_predictions(records)
    assert recorder.flush(timeout=20) is True
    stats = recorder.close(timeout=5)

    keys = [m.key() for m in read_messages(cluster.bootstrap, topic)]
    assert keys == [f"d{i}".encode() for i in range(7)]  # each exactly once
    (dead,) = list((tmp_path / "spool").glob("*/deadletter-*.jsonl"))
    assert dead.read_bytes() == encode(records[3]) + b"\n"
    assert (stats["written"], stats["rejected"]) == (7, 1)


# -- lifecycle -----------------------------------------------------------------


def test_close_is_idempotent_and_write_after_close_reconnects(cluster, topic):
    sink = sink_for(cluster, topic)
    sink.write([prediction("d1")])

    sink.close()
    sink.close()
    sink.write([prediction("d2")])
    sink.close()

    assert [m.key() for m in read_messages(cluster.bootstrap, topic)] == [b"d1", b"d2"]


def test_sink_pickles_as_its_url(cluster, topic):
    sink = sink_for(cluster, topic, "linger.ms=1&timeout=10")
    sink.write([prediction("d1")])

    copy = pickle.loads(pickle.dumps(sink))
    copy.write([prediction("d2")])

    assert copy.url == sink.url
    assert copy._producer is not sink._producer
    assert len(read_messages(cluster.bootstrap, topic)) == 2
    sink.close()
    copy.close()


def test_forked_child_builds_its_own_producer_and_exits(cluster, topic):
    script = textwrap.dedent(
        """
        import os, sys
        from mlf_middleware import Prediction
        from mlf_middleware.sinks.kafka import KafkaSink

        sink = KafkaSink.from_url(sys.argv[1])
        sink.write([Prediction("parent", {}, {"value": 1})])
        pid = os.fork()
        if pid == 0:
            sink.write([Prediction("child", {}, {"value": 2})])
            sink.close()
            sys.exit(0)  # a normal exit: the inherited producer must not hang it
        _, status = os.waitpid(pid, 0)
        sink.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    url = f"kafka://{cluster.bootstrap}/{topic}?timeout=10"

    result = subprocess.run(
        [sys.executable, "-c", script, url],
        capture_output=True, timeout=60, cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    keys = sorted(m.key() for m in read_messages(cluster.bootstrap, topic))
    assert keys == [b"child", b"parent"]


def test_contract_support_reads_back_what_was_written():
    with make_sink_and_reader() as (sink, read):
        records = [prediction("d1"), Actual("d1", 3, occurred_at=T)]
        sink.write(records)

        assert read() == records


def test_mock_cluster_listens_on_loopback_only(cluster):
    assert cluster.bootstrap.startswith("127.0.0.1:")
    assert isinstance(cluster, MockCluster) or not injection_available()
