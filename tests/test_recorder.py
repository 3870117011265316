import os
import pickle
import threading
from datetime import UTC, datetime

import pytest

import mlf_middleware as mlf
from mlf_middleware import Actual, Prediction, Recorder, generate_hash_from_data
from mlf_middleware.exceptions import ConfigError, SinkRejected
from mlf_middleware.sinks import JSONLSink, MemorySink, SQLiteSink
from mlf_middleware.testing import FixedClock, flushed, memory_recorder

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def accounting_holds(stats):
    for figures in stats["sinks"].values():
        assert figures["accepted"] == (
            figures["written"]
            + figures["rejected"]
            + figures["dropped"]
            + figures["queue_size"]
            + figures["spooled"]
        ), figures
    return True


class GatedSink(MemorySink):
    """Holds every write until ``gate`` is set (only in the creating process)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.pid = os.getpid()

    def write(self, records):
        self.entered.set()
        if os.getpid() == self.pid:
            assert self.gate.wait(10)
        super().write(records)


class FailingSink(MemorySink):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def write(self, records):
        self.calls += 1
        raise ConnectionError("down")


def test_record_writes_the_exact_record():
    with memory_recorder(clock=FixedClock(T0), model_version_fqn="m:1") as rec:
        data_id = rec.record(
            {"feature1": 3.33, "feature2": "class1"},
            {"value": "a", "probabilities": {"a": 0.75, "b": 0.25}},
            raw_data={"route": "/p"},
            latency_ms=2.5,
        )
        [p] = flushed(rec)

    assert data_id == "e4ff3f12e57e53cab6f6281c58393b6b"
    assert isinstance(p, Prediction)
    assert (p.data_id, p.model_version_fqn, p.occurred_at) == (data_id, "m:1", T0)
    assert p.features == {"feature1": 3.33, "feature2": "class1"}
    assert p.prediction_data == {"value": "a", "probabilities": {"a": 0.75, "b": 0.25}}
    assert p.raw_data == {"route": "/p"}
    assert p.latency_ms == 2.5
    assert p.record_id


def test_features_are_snapshotted_at_capture():
    features = {"a": 1, "nested": {"b": [1, 2]}}
    sink = GatedSink()
    rec = Recorder(sink)

    rec.record(features, {"value": 0})
    features["a"] = 99
    features["nested"]["b"].append(3)
    sink.gate.set()
    rec.close(5)

    assert sink.records[0].features == {"a": 1, "nested": {"b": [1, 2]}}


def test_redacted_value_never_reaches_the_sink():
    features = {"user": {"email": "x@example.com", "age": 30}, "score": 1}
    with memory_recorder(redact=["user.email"]) as rec:
        data_id = rec.record(features, {"value": 1}, redact=["score"])
        [p] = flushed(rec)

    assert p.features == {
        "user": {"email": "[REDACTED]", "age": 30},
        "score": "[REDACTED]",
    }
    assert data_id == generate_hash_from_data(
        {"user": {"email": "x@example.com", "age": 30}, "score": 1}
    )
    assert features["user"]["email"] == "x@example.com"


def test_sampling_keeps_actuals_with_their_predictions():
    with memory_recorder(sample_rate=0.5) as rec:
        ids = [rec.record({"i": i}, {"value": i}) for i in range(200)]
        for data_id in ids:
            rec.log_actual(data_id, 1)
        records = flushed(rec)
        stats = rec.stats()

    kept_p = {r.data_id for r in records if isinstance(r, Prediction)}
    kept_a = {r.data_id for r in records if isinstance(r, Actual)}
    assert kept_p == kept_a
    assert 60 < len(kept_p) < 140
    assert stats["sampled_out"] == 2 * (200 - len(kept_p))


def test_actual_value_records_an_actual_too():
    with memory_recorder(clock=FixedClock(T0)) as rec:
        rec.log_predictions(
            [Prediction("d1", {"a": 1}, {"value": 0}, actual_value=1)],
            model_version_fqn="m:2",
        )
        p, a = flushed(rec)

    assert (p.data_id, p.model_version_fqn, p.actual_value) == ("d1", "m:2", 1)
    assert isinstance(a, Actual)
    assert (a.data_id, a.value, a.model_version_fqn) == ("d1", 1, "m:2")


def test_mlfoundry_call_shape_runs_unchanged(tmp_path):
    mlf.configure(f"sqlite:///{tmp_path}/m.db")
    client = mlf.get_client()
    client.log_predictions(
        model_version_fqn="m:1",
        predictions=[
            Prediction(
                data_id=generate_hash_from_data({"f": 1}),
                features={"f": 1},
                prediction_data={"value": 1, "probabilities": {"0": 0.1, "1": 0.9}},
            )
        ],
    )
    client.log_actuals(
        model_version_fqn="m:1",
        actuals=[Actual(data_id=generate_hash_from_data({"f": 1}), value=1)],
    )
    client.close(5)

    [row] = SQLiteSink(tmp_path / "m.db").joined()
    assert row["model_version_fqn"] == "m:1"
    assert row["prediction_data"]["probabilities"] == {"0": 0.1, "1": 0.9}
    assert row["actual"]["value"] == 1


def test_failing_sink_never_raises_and_counts_failures():
    sink = FailingSink()
    rec = Recorder(sink, max_delay=0.01)

    for i in range(5):
        assert rec.record({"i": i}, {"value": i}) is not None
    assert rec.flush(timeout=0.5) is False
    stats = rec.close(timeout=0.5)

    assert sink.calls >= 2
    assert stats["failed_writes"] == sink.calls
    assert stats["written"] == 0
    assert stats["spooled"] == 5
    assert stats["dropped"] == 0
    assert accounting_holds(stats)


def test_failing_sink_without_spool_drops_at_close_deadline():
    sink = FailingSink()
    rec = Recorder(sink, max_delay=0.01, spool_dir=False)

    for i in range(5):
        rec.record({"i": i}, {"value": i})
    stats = rec.close(timeout=0.3)

    assert stats["failed_writes"] >= 1
    assert stats["dropped_by_reason"] == {"close_timeout": 5}
    assert accounting_holds(stats)


def test_rejected_record_is_isolated_from_its_batch():
    class Picky(MemorySink):
        def write(self, records):
            if any(r.features.get("bad") for r in records):
                raise SinkRejected("bad record")
            super().write(records)

    sink = Picky()
    rec = Recorder(sink, batch_size=8)
    for i in range(8):
        rec.record({"i": i, "bad": i == 5}, {"value": i})
    stats = rec.close(5)

    assert sorted(r.features["i"] for r in sink.records) == [0, 1, 2, 3, 4, 6, 7]
    assert stats["rejected"] == 1
    assert stats["written"] == 7
    assert accounting_holds(stats)


def test_full_queue_drops_newest_and_counts_it():
    sink = GatedSink()
    rec = Recorder(sink, max_queue_records=2, batch_size=1, overflow="drop_newest")
    rec.record({"i": 0}, {"value": 0})
    assert sink.entered.wait(5)

    for i in range(1, 6):
        rec.record({"i": i}, {"value": i})
    during = rec.stats()
    sink.gate.set()
    stats = rec.close(5)

    assert during["dropped_by_reason"] == {"queue_full": 3}
    assert accounting_holds(during)
    assert [r.features["i"] for r in sink.records] == [0, 1, 2]
    assert accounting_holds(stats)


def test_close_is_idempotent_and_later_records_are_counted():
    rec = Recorder(MemorySink())
    rec.record({"a": 1}, {"value": 1})

    first = rec.close(5)
    second = rec.close(5)
    assert rec.record({"a": 2}, {"value": 2}) is not None
    after = rec.stats()

    assert first["written"] == second["written"] == 1
    assert after["dropped_by_reason"] == {"closed": 1}
    assert rec.enabled is False


def test_invalid_values_are_counted_not_raised(caplog):
    with memory_recorder() as rec:
        assert rec.record({"a": object()}, {"value": 1}) is None
        assert rec.record({"a": 1}, {"no_value": 1}) is None
        assert rec.record([1, 2], {"value": 1}) is None
        stats = rec.stats()

    assert stats["dropped_by_reason"] == {"invalid": 3}
    assert "0x" not in caplog.text


def test_oversized_record_is_dropped_as_too_large():
    with memory_recorder(max_record_bytes=100) as rec:
        rec.record({"a": "x" * 200}, {"value": 1})
        stats = rec.stats()

    assert stats["dropped_by_reason"] == {"too_large": 1}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("sample_rate", 1.5),
        ("sample_rate", "half"),
        ("batch_size", 0),
        ("max_queue_bytes", -1),
        ("max_delay", 0),
        ("overflow", "explode"),
        ("redact", "user.email"),
        ("flush_timeout", -1),
        ("flush_timeout", float("inf")),
        ("max_delay", float("inf")),
        ("max_delay", float("nan")),
        ("block_timeout", float("nan")),
        ("enabled", "no"),
        ("clock", 5),
    ],
)
def test_bad_option_names_the_option(option, value):
    with pytest.raises(ConfigError, match=option):
        Recorder(MemorySink(), **{option: value})


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        Recorder(MemorySink(), sample_rat=0.5)


def test_recorder_pickles_as_configuration(tmp_path):
    rec = Recorder(f"sqlite:///{tmp_path}/p.db", sample_rate=0.5, model_version_fqn="m")
    rec.record({"a": 1}, {"value": 1})

    copy = pickle.loads(pickle.dumps(rec))
    rec.close(5)

    assert copy.sinks[0].path == tmp_path / "p.db"
    assert copy.sample_rate == 0.5
    assert copy.model_version_fqn == "m"
    assert copy.stats()["captured"] == 0
    copy.close(5)


def test_relative_sink_path_is_resolved_when_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = Recorder("sqlite:///rel.db")
    monkeypatch.chdir("/")

    copy = pickle.loads(pickle.dumps(rec))

    assert copy.sinks[0].path == tmp_path / "rel.db"
    rec.close(1)
    copy.close(1)


def test_default_recorder_uses_mlf_sink(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_SINK", f"jsonl:///{tmp_path}/out")
    mlf.recorder._default = None

    rec = mlf.get_recorder()
    mlf.log_predictions([Prediction("d", {"a": 1}, {"value": 2})])
    rec.close(5)

    assert isinstance(rec.sinks[0], JSONLSink)
    assert [r.data_id for r in rec.sinks[0].read_records()] == ["d"]
    mlf.recorder._default = None


def test_default_sink_is_sqlite_in_working_dir(tmp_path):
    mlf.recorder._default = None

    rec = mlf.get_recorder()

    assert rec.sinks[0].path == tmp_path / "mlf_predictions.db"
    rec.close(1)
    mlf.recorder._default = None


def test_mlf_disabled_records_nothing(monkeypatch):
    monkeypatch.setenv("MLF_DISABLED", "1")
    sink = MemorySink()
    rec = Recorder(sink)

    assert rec.record({"a": 1}, {"value": 1}) is None
    rec.close(5)

    assert sink.records == []
    assert rec.enabled is False


def test_several_sinks_each_get_every_record(tmp_path):
    slow = GatedSink()
    fast = MemorySink()
    rec = Recorder([slow, fast])

    rec.record({"a": 1}, {"value": 1})
    assert rec.sinks[1] is fast
    assert rec.flush(timeout=0.3) is False
    assert len(fast.records) == 1
    slow.gate.set()
    stats = rec.close(5)

    assert len(slow.records) == 1
    assert set(stats["sinks"]) == {"memory", "memory#2"}
    assert accounting_holds(stats)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_never_resends_parent_records(tmp_path):
    sink = JSONLSink(tmp_path / "out")
    gate = threading.Event()
    parent = os.getpid()
    original = sink.write_wire

    def gated(lines):
        if os.getpid() == parent:
            gate.wait(10)
        original(lines)

    sink.write_wire = gated
    rec = Recorder(sink, max_delay=0.01)
    for i in range(3):
        rec.record({"i": i}, {"value": i})

    pid = os.fork()
    if pid == 0:  # child
        rec.record({"i": 100}, {"value": 100})
        stats = rec.close(5)
        os._exit(0 if stats["written"] == 1 else 1)
    _, status = os.waitpid(pid, 0)
    gate.set()
    rec.close(5)

    assert os.waitstatus_to_exitcode(status) == 0
    values = sorted(r.features["i"] for r in sink.read_records())
    assert values == [0, 1, 2, 100]
    assert len(sink.files()) == 2


def test_logged_records_keep_their_record_ids():
    with memory_recorder() as rec:
        rec.log_predictions([Prediction("d", {"a": 1}, {"value": 1}, record_id="p1")])
        rec.log_actuals([Actual("d", 1, record_id="a1")])
        records = flushed(rec)

    assert [r.record_id for r in records] == ["p1", "a1"]


def test_record_many_records_each_row_with_its_output():
    rows = [{"i": i} for i in range(5)]
    outputs = [{"value": i * 10} for i in range(5)]
    with memory_recorder(clock=FixedClock(T0)) as rec:
        ids = rec.record_many(
            rows,
            outputs,
            raw_data={"route": "/b"},
            latency_ms=3.0,
            data_ids=[None, "given", None, None, None],
        )
        records = flushed(rec)

    assert ids == [
        generate_hash_from_data(rows[0]),
        "given",
        *(generate_hash_from_data(r) for r in rows[2:]),
    ]
    assert [(r.data_id, r.features, r.prediction_data) for r in records] == [
        (ids[i], rows[i], outputs[i]) for i in range(5)
    ]
    assert {r.occurred_at for r in records} == {T0}
    assert {r.latency_ms for r in records} == {3.0}


def test_record_many_keeps_good_rows_when_one_is_bad():
    with memory_recorder() as rec:
        ids = rec.record_many(
            [{"a": 1}, {"a": object()}, {"a": 3}],
            [{"value": 1}, {"value": 2}, {"value": 3}],
        )
        records = flushed(rec)
        stats = rec.stats()

    assert ids[1] is None
    assert [r.features["a"] for r in records] == [1, 3]
    assert stats["dropped_by_reason"] == {"invalid": 1}
    assert stats["captured"] == 3


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1, "3"])
def test_bad_flush_and_close_timeouts_name_the_problem(timeout):
    rec = Recorder(MemorySink())

    with pytest.raises(ConfigError, match="timeout"):
        rec.flush(timeout)
    with pytest.raises(ConfigError, match="timeout"):
        rec.close(timeout)
    rec.close(1)


def test_infinite_flush_timeout_in_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("MLF_FLUSH_TIMEOUT", "inf")

    with pytest.raises(ConfigError, match="MLF_FLUSH_TIMEOUT"):
        Recorder(MemorySink())


@pytest.mark.parametrize("path", ["cards.*.number", "items.0.secret", "a..b"])
def test_redact_paths_that_cannot_match_are_refused(path):
    with pytest.raises(ConfigError, match="redact"):
        Recorder(MemorySink(), redact=[path])


def test_record_many_with_unpaired_lengths_records_nothing_and_counts():
    with memory_recorder() as rec:
        ids = rec.record_many([{"a": 1}, {"a": 2}], [{"value": 1}])
        stats = rec.stats()

    assert ids == [None, None]
    assert stats["dropped_by_reason"] == {"unpaired": 2}


def test_bad_time_or_failing_clock_is_counted_not_raised():
    def broken_clock():
        raise RuntimeError("clock down")

    with memory_recorder(clock=broken_clock) as rec:
        assert rec.record({"a": 1}, {"value": 1}) is None
        assert rec.record_many([{"a": 1}], [{"value": 1}]) == [None]
        stats = rec.stats()
    with memory_recorder() as rec:
        assert rec.record({"a": 1}, {"value": 1}, occurred_at="noon") is None
        bad_time = rec.stats()

    assert stats["dropped_by_reason"] == {"invalid": 2}
    assert stats["captured"] == 2
    assert bad_time["dropped_by_reason"] == {"invalid": 1}
