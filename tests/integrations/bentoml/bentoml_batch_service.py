"""A BentoML service that test_bentoml_serve.py runs under ``bentoml serve``.

Environment: ``MLF_TEST_SINK`` is where records go; ``MLF_TEST_BATCHES``
names a file that gets one line per batch the dispatcher runs (its size).
"""

from __future__ import annotations

import os
import time

import bentoml
import numpy as np

from mlf_middleware import Recorder
from mlf_middleware.integrations.bentoml import capture_service

# A minute's max_delay: records reach the store only when the worker's
# shutdown hook flushes them, which is what the tests check.
RECORDER = Recorder(os.environ["MLF_TEST_SINK"], max_delay=60.0, batch_size=10_000)


@capture_service(
    recorder=RECORDER,
    model_version_fqn="adder:1",
    feature_names=["a", "b"],
    record_errors=True,
)
@bentoml.service(workers=1)
class BatchService:
    """Adds 100 * a + b, row by row, in batches of at most ten rows."""

    @bentoml.api(batchable=True, max_batch_size=10)
    def predict(self, rows: np.ndarray) -> np.ndarray:
        time.sleep(0.3)  # a slow model: concurrent requests queue and merge
        with open(os.environ["MLF_TEST_BATCHES"], "a") as batches:
            batches.write(f"{len(rows)}\n")
        return rows[:, 0] * 100 + rows[:, 1]

    @bentoml.api
    def fail(self, a: float) -> float:
        raise ValueError("this API always fails")
