"""The per-sink delivery line, driven through the Recorder."""

import asyncio
import threading
import time

import pytest

from mlf_middleware import Recorder
from mlf_middleware.exceptions import SinkRejected, SinkUnavailable
from mlf_middleware.sinks import MemorySink


def balanced(figures):
    return figures["accepted"] == (
        figures["written"]
        + figures["rejected"]
        + figures["dropped"]
        + figures["queue_size"]
        + figures["spooled"]
    )


class Switch(MemorySink):
    """A sink that is down until ``up`` is set."""

    name = "switch"
    url = "test://switch"

    def __init__(self):
        super().__init__()
        self.up = threading.Event()
        self.failed_twice = threading.Event()
        self.failures = 0

    def write(self, records):
        if not self.up.is_set():
            self.failures += 1
            if self.failures >= 2:
                self.failed_twice.set()
            raise SinkUnavailable("down")
        super().write(records)


class Gate(MemorySink):
    """Holds each write until ``gate`` is set."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(self, records):
        self.entered.set()
        assert self.gate.wait(10)
        super().write(records)


def test_records_spooled_while_down_arrive_in_order():
    sink = Switch()
    rec = Recorder(sink, batch_size=10, max_delay=0.01)

    for i in range(100):
        rec.record({"i": i}, {"value": i})
    assert sink.failed_twice.wait(5)
    during = rec.stats()["sinks"]["switch"]
    sink.up.set()
    for i in range(100, 150):
        rec.record({"i": i}, {"value": i})
    assert rec.flush(10)
    stats = rec.close(5)

    assert [r.features["i"] for r in sink.records] == list(range(150))
    assert balanced(during)
    assert stats["written"] == 150
    assert stats["spooled"] == 0
    assert stats["failed_writes"] >= 2


def test_spill_policy_keeps_records_a_full_queue_cannot_hold():
    sink = Gate()
    rec = Recorder(sink, batch_size=1, max_queue_records=5, max_delay=0.01)
    rec.record({"i": 0}, {"value": 0})
    assert sink.entered.wait(5)

    for i in range(1, 50):
        rec.record({"i": i}, {"value": i})
    during = rec.stats()
    sink.gate.set()
    assert rec.flush(10)
    stats = rec.close(5)

    assert during["spooled"] == 44
    assert during["queue_size"] == 6
    assert [r.features["i"] for r in sink.records] == list(range(50))
    assert stats["dropped"] == 0


def test_drop_oldest_keeps_the_newest():
    sink = Gate()
    rec = Recorder(sink, batch_size=1, max_queue_records=3, overflow="drop_oldest")
    rec.record({"i": 0}, {"value": 0})
    assert sink.entered.wait(5)

    for i in range(1, 10):
        rec.record({"i": i}, {"value": i})
    sink.gate.set()
    stats = rec.close(5)

    assert [r.features["i"] for r in sink.records] == [0, 7, 8, 9]
    assert stats["dropped_by_reason"] == {"queue_full": 6}


def test_block_policy_waits_for_room_off_the_event_loop():
    sink = Gate()
    rec = Recorder(
        sink,
        batch_size=1,
        max_queue_records=1,
        overflow="block",
        block_timeout=5,
    )
    rec.record({"i": 0}, {"value": 0})
    assert sink.entered.wait(5)
    rec.record({"i": 1}, {"value": 1})  # fills the queue

    threading.Timer(0.2, sink.gate.set).start()
    started = time.monotonic()
    rec.record({"i": 2}, {"value": 2})
    waited = time.monotonic() - started
    stats = rec.close(5)

    assert waited >= 0.1
    assert stats["spooled"] == 0
    assert [r.features["i"] for r in sink.records] == [0, 1, 2]


def test_block_policy_spills_on_the_event_loop():
    sink = Gate()
    rec = Recorder(
        sink,
        batch_size=1,
        max_queue_records=1,
        overflow="block",
        block_timeout=30,
    )
    rec.record({"i": 0}, {"value": 0})
    assert sink.entered.wait(5)
    rec.record({"i": 1}, {"value": 1})

    async def on_loop():
        started = time.monotonic()
        rec.record({"i": 2}, {"value": 2})
        return time.monotonic() - started

    waited = asyncio.run(on_loop())
    spooled = rec.stats()["spooled"]
    sink.gate.set()
    rec.close(5)

    assert waited < 1
    assert spooled == 1
    assert [r.features["i"] for r in sink.records] == [0, 1, 2]


def test_close_with_sink_down_returns_by_deadline_and_reports_spool():
    rec = Recorder(Switch(), max_delay=0.01)
    for i in range(20):
        rec.record({"i": i}, {"value": i})

    started = time.monotonic()
    stats = rec.close(timeout=2)
    took = time.monotonic() - started

    assert 1.5 < took < 3
    assert stats["spooled"] == 20
    assert balanced(stats["sinks"]["switch"])


def test_rejected_records_go_to_the_dead_letter_file(tmp_path):
    class Picky(MemorySink):
        def write(self, records):
            if any(r.features.get("bad") for r in records):
                raise SinkRejected("no")
            super().write(records)

    rec = Recorder(Picky(), batch_size=4, spool_dir=tmp_path / "sp")
    for i in range(4):
        rec.record({"i": i, "bad": i == 2}, {"value": i})
    stats = rec.close(5)

    [letter] = (tmp_path / "sp").glob("*/deadletter-*.jsonl")
    assert b'"i":2' in letter.read_bytes()
    assert letter.read_bytes().count(b"\n") == 1
    assert stats["rejected"] == 1


def test_accounting_holds_under_concurrent_capture():
    sink = Switch()
    rec = Recorder(sink, batch_size=8, max_queue_records=50, max_delay=0.001)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(rec.stats()["sinks"]["switch"])

    def produce(n):
        for i in range(500):
            rec.record({"t": n, "i": i}, {"value": i})

    sampler = threading.Thread(target=sample)
    sampler.start()
    producers = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for t in producers:
        t.start()
    threading.Timer(0.05, sink.up.set).start()
    for t in producers:
        t.join()
    assert rec.flush(10)
    stop.set()
    sampler.join()
    stats = rec.close(5)

    assert samples
    assert all(balanced(s) for s in samples)
    assert stats["written"] == 2000
    assert len({r.record_id for r in sink.records}) == 2000


@pytest.mark.parametrize("timeout", [0.2, 1.0])
def test_flush_returns_by_its_deadline(timeout):
    rec = Recorder(Switch(), max_delay=0.01)
    rec.record({"a": 1}, {"value": 1})

    started = time.monotonic()
    done = rec.flush(timeout)
    took = time.monotonic() - started
    rec.close(0.1)

    assert done is False
    assert timeout * 0.9 <= took < timeout + 1


def test_a_lone_record_leaves_within_max_delay_without_flush():
    class Signal(MemorySink):
        def __init__(self):
            super().__init__()
            self.wrote = threading.Event()

        def write(self, records):
            super().write(records)
            self.wrote.set()

    sink = Signal()
    rec = Recorder(sink, max_delay=0.05, batch_size=100)

    rec.record({"a": 1}, {"value": 1})

    assert sink.wrote.wait(5)
    assert len(sink.records) == 1
    rec.close(5)


def test_order_holds_when_callers_spill_while_a_failing_write_is_in_flight():
    class FirstWriteFails(MemorySink):
        name = "first-fails"
        url = "test://first-fails"

        def __init__(self):
            super().__init__()
            self.entered = threading.Event()
            self.release = threading.Event()
            self.calls = 0

        def write(self, records):
            self.calls += 1
            if self.calls == 1:
                self.entered.set()
                assert self.release.wait(10)
                raise SinkUnavailable("down")
            super().write(records)

    sink = FirstWriteFails()
    rec = Recorder(sink, max_queue_records=10, batch_size=5, max_delay=0.01)
    for i in range(5):
        rec.record({"i": i}, {"value": i})
    assert sink.entered.wait(5)

    for i in range(5, 40):  # fills the queue, then spills behind the batch
        rec.record({"i": i}, {"value": i})
    sink.release.set()
    assert rec.flush(10)
    rec.close(5)

    assert [r.features["i"] for r in sink.records] == list(range(40))


def test_a_caller_waiting_under_block_is_not_yet_counted():
    sink = Gate()
    rec = Recorder(
        sink, batch_size=1, max_queue_records=1, overflow="block", block_timeout=5
    )
    rec.record({"i": 0}, {"value": 0})
    assert sink.entered.wait(5)
    rec.record({"i": 1}, {"value": 1})
    waiting = threading.Thread(target=rec.record, args=({"i": 2}, {"value": 2}))
    waiting.start()

    while not rec._channels[0]._settled._waiters:  # the caller is blocked
        time.sleep(0.001)
    during = rec.stats()["sinks"]["memory"]
    sink.gate.set()
    waiting.join(10)
    stats = rec.close(5)

    assert balanced(during)
    assert during["accepted"] == 2
    assert stats["written"] == 3


def test_close_keeps_its_deadline_when_the_sink_close_waits_for_a_hung_write():
    class HungWrite(MemorySink):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()
            self.entered = threading.Event()
            self.release = threading.Event()

        def write(self, records):
            with self.lock:
                self.entered.set()
                self.release.wait(30)

        def close(self):
            with self.lock:  # waits for the write, as real sinks do
                pass

    sink = HungWrite()
    rec = Recorder(sink, spool_dir=False, max_delay=0.01)
    rec.record({"a": 1}, {"value": 1})
    assert sink.entered.wait(5)

    started = time.monotonic()
    stats = rec.close(timeout=0.5)
    took = time.monotonic() - started
    sink.release.set()

    assert took < 2
    assert stats["queue_size"] == 1
