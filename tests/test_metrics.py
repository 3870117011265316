import pytest

from mlf_middleware import Recorder
from mlf_middleware.sinks import MemorySink

prometheus_client = pytest.importorskip("prometheus_client")


def sample(name, **labels):
    return prometheus_client.REGISTRY.get_sample_value(name, labels)


def test_every_recorder_is_exported_under_its_sink_label():
    class Named(MemorySink):
        name = "metrics-test"

    before = sample("mlf_records_written_total", sink="metrics-test") or 0
    first = Recorder(Named(), spool_dir=False)
    second = Recorder(Named(), spool_dir=False)

    for rec in (first, second):
        rec.record({"a": 1}, {"value": 1})
        assert rec.flush(5)
    written = sample("mlf_records_written_total", sink="metrics-test")
    queued = sample("mlf_queue_records", sink="metrics-test")
    first.close(5)
    second.close(5)

    assert written - before == 2
    assert queued == 0


def test_drops_are_exported_by_reason():
    class Tiny(MemorySink):
        name = "metrics-drops"

    rec = Recorder(Tiny(), max_record_bytes=10)
    rec.record({"a": "long enough to be dropped"}, {"value": 1})
    rec.close(5)

    rec2 = Recorder(Tiny())
    rec2.close(5)
    rec2.record({"a": 1}, {"value": 1})

    assert sample("mlf_records_dropped_total", sink="", reason="too_large") >= 1
    assert (
        sample("mlf_records_dropped_total", sink="metrics-drops", reason="closed") >= 1
    )
