"""@capture under concurrency: threads and tasks never mix records or ids."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from mlf_middleware.decorator import capture, last_data_ids
from mlf_middleware.hashing import generate_hash_from_data
from mlf_middleware.recorder import Recorder
from mlf_middleware.sinks import MemorySink

THREADS = 8
CALLS = 100


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder(MemorySink())
    yield recorder
    recorder.close(timeout=5)


def written(recorder: Recorder) -> list:
    assert recorder.flush(10)
    return recorder.sinks[0].predictions


def test_threads_never_mix_records_or_ids(recorder):
    @capture(recorder=recorder)
    def predict(features):
        return features["thread"] * 1000 + features["call"]

    start = threading.Barrier(THREADS)
    mixed: list[tuple[int, int]] = []

    def work(thread: int) -> None:
        start.wait(timeout=10)
        for call in range(CALLS):
            row = {"thread": thread, "call": call}
            predict(row)
            if last_data_ids() != [generate_hash_from_data(row)]:
                mixed.append((thread, call))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    records = written(recorder)

    assert mixed == []
    assert len(records) == THREADS * CALLS
    for record in records:
        features = record.features
        assert record.prediction_data == {
            "value": features["thread"] * 1000 + features["call"]
        }
        assert record.data_id == generate_hash_from_data(features)


def test_interleaved_tasks_never_mix_records_or_ids(recorder):
    @capture(recorder=recorder, exclude_args=["gate"])
    async def predict(features, gate=None):
        if gate is not None:
            await gate.wait()  # the first call waits until the second finished
        return features["n"] * 10

    async def main():
        gate = asyncio.Event()

        async def first():
            await predict({"n": 1}, gate)
            return last_data_ids()

        async def second():
            await predict({"n": 2})
            ids = last_data_ids()
            gate.set()
            return ids

        return await asyncio.wait_for(asyncio.gather(first(), second()), 10)

    first_ids, second_ids = asyncio.run(main())
    records = written(recorder)

    assert [(r.features["n"], r.prediction_data) for r in records] == [
        (2, {"value": 20}),
        (1, {"value": 10}),
    ]
    assert second_ids == [generate_hash_from_data({"n": 2})]
    assert first_ids == [generate_hash_from_data({"n": 1})]


def test_many_tasks_keep_their_own_ids(recorder):
    @capture(recorder=recorder)
    async def predict(features):
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return -features["n"]

    async def one(n: int) -> bool:
        row = {"n": n}
        await predict(row)
        await asyncio.sleep(0)
        return last_data_ids() == [generate_hash_from_data(row)]

    async def main():
        return await asyncio.gather(*(one(n) for n in range(50)))

    assert all(asyncio.run(main()))
    records = written(recorder)
    assert sorted(r.features["n"] for r in records) == list(range(50))
    assert all(r.prediction_data == {"value": -r.features["n"]} for r in records)
