"""HTTPSink against a real collector served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import orjson
import pytest
from support_http import Answer, Collector, collector_server, make_sink_and_reader

from mlf_middleware import Actual, Prediction, Recorder
from mlf_middleware.exceptions import ConfigError, SinkRejected, SinkUnavailable
from mlf_middleware.records import encode
from mlf_middleware.sinks import HTTPSink, open_sink
from mlf_middleware.sinks.http import retry_after_seconds

T = datetime(2024, 3, 1, 12, tzinfo=UTC)


def prediction(data_id, value=1):
    return Prediction(
        data_id,
        {"x": value, "name": "ada"},
        {"value": value, "probabilities": {"a": 0.25, "b": 0.75}},
        occurred_at=T,
        model_version_fqn="m:1",
        latency_ms=2.5,
    )


@pytest.fixture
def collector():
    with collector_server() as (c, base):
        c.base = base
        yield c


@pytest.fixture
def sink_for():
    """Open sinks on a collector; every one is closed at teardown."""
    made = []

    def open_one(collector, query=""):
        made.append(HTTPSink.from_url(f"{collector.base}/ingest{query}"))
        return made[-1]

    yield open_one
    for sink in made:
        sink.close()


def accounting_holds(figures):
    return figures["accepted"] == (
        figures["written"] + figures["rejected"] + figures["dropped"]
        + figures["queue_size"] + figures["spooled"]
    )


# -- the URL ------------------------------------------------------------------


def test_url_options_round_trip():
    sink = open_sink(
        "https://Collector.example:8443/v1/ingest?format=cloudevents&gzip=true"
        "&auth_env=COLLECTOR_TOKEN&auth_scheme=Token&timeout=2.5&source=svc-a"
    )

    assert isinstance(sink, HTTPSink)
    assert sink.endpoint == "https://collector.example:8443/v1/ingest"
    assert (sink.format, sink.gzip, sink.timeout) == ("cloudevents", True, 2.5)
    assert (sink.auth_env, sink.auth_scheme, sink.source) == (
        "COLLECTOR_TOKEN", "Token", "svc-a",
    )
    assert sink.verify is True
    assert sink.name == "http:collector.example:8443/v1/ingest"
    assert sink.url == (
        "https://collector.example:8443/v1/ingest?format=cloudevents&gzip=true"
        "&auth_env=COLLECTOR_TOKEN&auth_scheme=Token&timeout=2.5&source=svc-a"
    )
    assert HTTPSink.from_url(sink.url).url == sink.url


def test_defaults_leave_no_query():
    sink = HTTPSink.from_url("http://127.0.0.1:9/")

    assert sink.url == "http://127.0.0.1:9/"
    assert (sink.format, sink.gzip, sink.verify) == ("json", False, True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h/x", "must start with http"),
        ("http:///x", "needs a host"),
        ("http://h:99999/x", "bad port"),
        ("http://h:x/x", "bad port"),
        ("http://h:0/x", "bad port 0"),
        ("https://user:secret@h/x", "must not hold credentials"),
        ("http://h/x?format=xml", "format must be one of json, cloudevents"),
        ("http://h/x?gzip=maybe", "gzip must be true or false"),
        ("http://h/x?verify=perhaps", "verify must be true or false"),
        ("http://h/x?timeout=-1", "timeout must be positive"),
        ("http://h/x?timeout=soon", "timeout must be in seconds"),
        ("http://h/x?auth_env=has-dash", "auth_env must name an environment"),
        ("http://h/x?auth_scheme=two%20words", "auth_scheme must be a single word"),
        ("http://h/x?auth_header=bad:name", "auth_header must be a header name"),
        ("http://h/x?ca_file=rel.pem", "ca_file must be an absolute path"),
        ("http://h/x?token=abc", "unknown option 'token'"),
        ("http://h/x?gzip=1&gzip=0", "given twice"),
    ],
)
def test_bad_urls_name_the_problem(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        HTTPSink.from_url(url)

    assert "secret" not in str(info.value)


def test_verify_false_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="mlf_middleware.sinks.http"):
        sink = HTTPSink.from_url("https://h/x?verify=false")

    assert sink.verify is False
    assert "TLS verification is OFF" in caplog.text


def test_credential_over_plain_http_to_remote_host_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="mlf_middleware.sinks.http"):
        HTTPSink.from_url("http://127.0.0.1/x?auth_env=TOKEN")
        assert caplog.text == ""
        HTTPSink.from_url("http://collector.internal/x?auth_env=TOKEN")

    assert "travels unencrypted" in caplog.text


def test_sink_pickles_as_its_url(collector, sink_for):
    sink = sink_for(collector, "?gzip=true")
    sink.write([prediction("d1")])

    copy = pickle.loads(pickle.dumps(sink))
    copy.write([prediction("d2")])

    assert copy.url == sink.url
    assert [r["data_id"] for r in collector.delivered] == ["d1", "d2"]
    copy.close()


# -- bodies -------------------------------------------------------------------


def test_json_batch_is_an_array_of_wire_records(collector, sink_for):
    sink = sink_for(collector)
    records = [prediction("d1"), Actual("d1", 0, occurred_at=T)]

    sink.write(records)

    (req,) = collector.requests
    assert req.path == "/ingest"
    assert req.headers["content-type"] == "application/json"
    assert "content-encoding" not in req.headers
    assert req.raw == b"[" + b",".join(encode(r) for r in records) + b"]"
    assert collector.read() == records


def test_gzip_body_is_compressed_json(collector, sink_for):
    sink = sink_for(collector, "?gzip=true")
    records = [prediction(f"d{i}") for i in range(50)]

    sink.write(records)

    (req,) = collector.requests
    assert req.headers["content-encoding"] == "gzip"
    assert gzip.decompress(req.raw) == b"[" + b",".join(map(encode, records)) + b"]"
    assert len(req.raw) < len(req.body) / 4


def test_cloudevents_batch_wraps_each_record(collector, sink_for):
    sink = sink_for(collector, "?format=cloudevents&source=/svc/iris")
    p = prediction("d1")
    a = Actual("d1", "yes", occurred_at=T + timedelta(seconds=1))

    sink.write([p, a])

    (req,) = collector.requests
    assert req.headers["content-type"] == "application/cloudevents-batch+json"
    assert req.payload == [
        {
            "specversion": "1.0",
            "id": record.record_id,
            "source": "/svc/iris",
            "type": kind,
            "subject": "d1",
            "time": when,
            "datacontenttype": "application/json",
            "data": orjson.loads(encode(record)),
        }
        for record, kind, when in (
            (p, "mlf.prediction", "2024-03-01T12:00:00.000000Z"),
            (a, "mlf.actual", "2024-03-01T12:00:01.000000Z"),
        )
    ]
    assert collector.read() == [p, a]


# -- credentials ----------------------------------------------------------------


def test_auth_header_is_read_from_environment_at_each_write(
    collector, monkeypatch, sink_for
):
    sink = sink_for(collector, "?auth_env=COLLECTOR_TOKEN")

    monkeypatch.setenv("COLLECTOR_TOKEN", "first-t0ken")
    sink.write([prediction("d1")])
    monkeypatch.setenv("COLLECTOR_TOKEN", "second-t0ken")
    sink.write([prediction("d2")])

    assert [r.headers["authorization"] for r in collector.requests] == [
        "Bearer first-t0ken",
        "Bearer second-t0ken",
    ]


def test_custom_header_and_bare_credential(collector, monkeypatch, sink_for):
    monkeypatch.setenv("API_KEY", "k-123")
    sink = sink_for(collector, "?auth_env=API_KEY&auth_header=X-API-Key&auth_scheme=")

    sink.write([prediction("d1")])

    assert collector.requests[0].headers["x-api-key"] == "k-123"
    assert "authorization" not in collector.requests[0].headers


def test_missing_credential_is_unavailable(collector, monkeypatch, sink_for):
    monkeypatch.delenv("COLLECTOR_TOKEN", raising=False)
    sink = sink_for(collector, "?auth_env=COLLECTOR_TOKEN")

    with pytest.raises(SinkUnavailable, match="COLLECTOR_TOKEN is not set"):
        sink.write([prediction("d1")])

    assert collector.requests == []


def test_credential_never_shown_or_logged(monkeypatch, caplog):
    monkeypatch.setenv("COLLECTOR_TOKEN", "Sup3r-Secret-Value")
    collector = Collector(token="Bearer Sup3r-Secret-Value")

    with collector_server(collector) as (_, base), caplog.at_level(logging.DEBUG):
        sink = HTTPSink.from_url(f"{base}/ingest?auth_env=COLLECTOR_TOKEN")
        recorder = Recorder(sink, max_delay=0.01)
        recorder.log_predictions([prediction("d1")])
        assert recorder.flush(timeout=10) is True
        monkeypatch.setenv("COLLECTOR_TOKEN", "Wr0ng-Value")
        recorder.log_predictions([prediction("d2")])
        assert recorder.flush(timeout=0.5) is False  # 401: retried, spooled
        recorder.close(timeout=0.5)

    shown = [sink.url, sink.name, repr(sink), str(pickle.dumps(sink)), caplog.text]
    assert all("Sup3r" not in s and "Wr0ng" not in s for s in shown)
    assert "answered 401" in caplog.text
    assert [r["data_id"] for r in collector.delivered] == ["d1"]


# -- status handling --------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(collector, status, sink_for):
    collector.answer_next(status)

    sink_for(collector).write([prediction("d1")])

    assert [r["data_id"] for r in collector.delivered] == ["d1"]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 401, 403, 404])
def test_retryable_statuses_are_unavailable(collector, status, sink_for):
    collector.answer_next(status)

    with pytest.raises(SinkUnavailable, match=f"answered {status}") as info:
        sink_for(collector).write([prediction("d1")])

    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [400, 413, 422])
def test_rejecting_statuses_are_rejected(collector, status, sink_for):
    collector.answer_next(status)

    with pytest.raises(SinkRejected, match=f"answered {status}"):
        sink_for(collector).write([prediction("d1")])


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(collector, status, sink_for):
    collector.answer_next(Answer(status, {"location": "/elsewhere"}))

    with pytest.raises(SinkUnavailable, match="never followed"):
        sink_for(collector).write([prediction("d1")])

    assert [r.path for r in collector.requests] == ["/ingest"]


def test_retry_after_seconds_is_honoured(collector, sink_for):
    collector.answer_next(Answer(429, {"retry-after": "7"}))

    with pytest.raises(SinkUnavailable) as info:
        sink_for(collector).write([prediction("d1")])

    assert info.value.retry_after == 7.0


def test_retry_after_http_date_is_honoured(collector, sink_for):
    later = datetime.now(UTC) + timedelta(seconds=120)
    collector.answer_next(Answer(503, {"retry-after": format_datetime(later, True)}))

    with pytest.raises(SinkUnavailable) as info:
        sink_for(collector).write([prediction("d1")])

    assert 100 < info.value.retry_after <= 120


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("30", 30.0),
        ("Fri, 01 Mar 2024 12:00:10 GMT", 10.0),
        ("Fri, 01 Mar 2024 11:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_retry_after_values(value, seconds):
    assert retry_after_seconds(value, now=T) == seconds


def test_refused_connection_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the write
    sink = HTTPSink.from_url(f"http://127.0.0.1:{port}/ingest?timeout=2")

    with pytest.raises(SinkUnavailable, match="ConnectError"):
        sink.write([prediction("d1")])
    sink.close()


def test_stalled_collector_times_out(collector, sink_for):
    collector.answer_next(Answer(200, stall=1.0))
    sink = sink_for(collector, "?timeout=0.2")
    batch = [prediction("d1")]

    with pytest.raises(SinkUnavailable, match="timed out"):
        sink.write(batch)
    sink.write(batch)

    # the stalled copy arrived too: readers keep one per record_id
    assert [r["data_id"] for r in collector.delivered] == ["d1", "d1"]
    assert [r.data_id for r in collector.read()] == ["d1"]


# -- through the Recorder ---------------------------------------------------------


def test_recorder_delivers_everything_after_a_run_of_500s(collector, sink_for):
    collector.answer_next(*[500] * 4)
    sink = sink_for(collector)
    recorder = Recorder(sink, batch_size=25, max_delay=0.01)
    predictions = [prediction(f"d{i}", i) for i in range(100)]
    actuals = [Actual(f"d{i}", i % 2, occurred_at=T) for i in range(20)]

    recorder.log_predictions(predictions)
    recorder.log_actuals(actuals)
    assert recorder.flush(timeout=30) is True
    stats = recorder.close(timeout=5)

    got = collector.read()
    assert got[:100] == predictions  # in order, once each
    assert [(a.data_id, a.value) for a in got[100:]] == [
        (a.data_id, a.value) for a in actuals
    ]
    assert len(collector.delivered) == 120
    figures = stats["sinks"][sink.name]
    assert (figures["written"], figures["failed_writes"]) == (120, 4)
    assert figures["rejected"] == figures["dropped"] == figures["spooled"] == 0
    assert accounting_holds(figures)


def test_recorder_isolates_a_422_record_in_dead_letter(
    collector, tmp_path, sink_for
):
    collector.reject_batches_with("bad", status=422)
    sink = sink_for(collector)
    recorder = Recorder(sink, batch_size=64, max_delay=0.01)
    records = [prediction(f"d{i}", i) for i in range(8)]
    bad = prediction("bad", 99)
    records.insert(5, bad)

    recorder.log_predictions(records)
    assert recorder.flush(timeout=20) is True
    stats = recorder.close(timeout=5)

    assert collector.read() == [r for r in records if r is not bad]
    (dead,) = (tmp_path / "spool").glob("*/deadletter-*.jsonl")
    assert dead.read_bytes() == encode(bad) + b"\n"
    figures = stats["sinks"][sink.name]
    assert (figures["written"], figures["rejected"]) == (8, 1)
    assert accounting_holds(figures)


def test_recorder_413_splits_until_the_batch_fits(collector, sink_for):
    collector.reject_batches_with("huge", status=413)
    sink = sink_for(collector, "?format=cloudevents&gzip=true")
    recorder = Recorder(sink, batch_size=32, max_delay=0.01)
    records = [prediction(f"d{i}") for i in range(20)] + [prediction("huge")]

    recorder.log_predictions(records)
    assert recorder.flush(timeout=20) is True
    stats = recorder.close(timeout=5)

    assert collector.read() == records[:-1]
    assert stats["rejected"] == 1


# -- processes ----------------------------------------------------------------------


def test_contract_support_reads_back_what_was_written():
    with make_sink_and_reader() as (sink, read):
        records = [prediction("d1"), Actual("d1", 3, occurred_at=T)]
        sink.write(records)

        assert read() == records


def test_forked_child_opens_its_own_client(collector):
    script = textwrap.dedent(
        """
        import os, sys
        from mlf_middleware import Prediction
        from mlf_middleware.sinks.http import HTTPSink

        sink = HTTPSink.from_url(sys.argv[1])
        sink.write([Prediction("parent", {}, {"value": 1})])
        parent_client = sink._http
        pid = os.fork()
        if pid == 0:
            sink.write([Prediction("child", {}, {"value": 2})])
            ok = sink._http is not parent_client
            sink.close()
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        sink.write([Prediction("parent-again", {}, {"value": 3})])
        sink.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", script, f"{collector.base}/ingest"],
        capture_output=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert [r["data_id"] for r in collector.delivered] == [
        "parent", "child", "parent-again",
    ]


# -- TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


@pytest.fixture
def tls_collector(self_signed):
    cert, key = self_signed
    with collector_server(ssl_certfile=str(cert), ssl_keyfile=str(key)) as (c, base):
        c.base = base
        yield c


def test_tls_certificate_is_verified_by_default(tls_collector, sink_for):
    sink = sink_for(tls_collector, "?timeout=5")

    assert sink.endpoint.startswith("https://127.0.0.1:")
    with pytest.raises(SinkUnavailable, match="ConnectError"):
        sink.write([prediction("d1")])
    assert tls_collector.requests == []


def test_ca_file_trusts_the_collector(tls_collector, self_signed, sink_for):
    sink = sink_for(tls_collector, f"?ca_file={self_signed[0]}")

    sink.write([prediction("d1")])

    assert [r["data_id"] for r in tls_collector.delivered] == ["d1"]


def test_verify_false_reaches_an_untrusted_collector(tls_collector, sink_for):
    sink = sink_for(tls_collector, "?verify=false")

    sink.write([prediction("d1")])

    assert [r["data_id"] for r in tls_collector.delivered] == ["d1"]
