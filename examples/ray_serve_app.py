"""Serve a scikit-learn iris classifier with Ray Serve, recording every prediction.

Requests are batched with ``serve.batch``; each flower still becomes its own
record, with its request's id. Run it as a script, from the repository root:

    RAY_USAGE_STATS_ENABLED=0 python examples/ray_serve_app.py

It starts Ray and Serve (HTTP on 127.0.0.1:8000), asks about a few flowers,
shuts Serve down (the replicas flush their records) and prints what
``examples/iris_predictions.db`` (or the sink ``MLF_SINK`` names) now
holds. Or run the application under ``serve run`` (from ``examples/``, so
that the replicas can import this file) and send your own requests:

    cd examples && RAY_USAGE_STATS_ENABLED=0 serve run ray_serve_app:app
    curl -s -X POST http://127.0.0.1:8000/ -H 'content-type: application/json' \
        -d '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
             "petal_width": 0.2}'

Ray sends usage statistics to its makers unless ``RAY_USAGE_STATS_ENABLED=0``,
and its processes talk over the machine's network address: see
docs/ray_serve.md before running it on a shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ray import serve
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from starlette.requests import Request

from mlf_middleware.integrations.ray_serve import capture_deployment
from mlf_middleware.sinks import open_sink

IRIS = load_iris()
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = [str(name) for name in IRIS.target_names]
# Absolute: a replica that imports this file anew resolves it the same way.
HERE = Path(__file__).resolve().parent
SINK = os.environ.get("MLF_SINK") or f"sqlite:///{HERE / 'iris_predictions.db'}"


@serve.deployment(num_replicas=2, max_ongoing_requests=32)
class IrisClassifier:
    """Classify one iris flower per request from its measurements (cm)."""

    def __init__(self) -> None:
        # Small enough to train in each replica in a few milliseconds.
        self.model = LogisticRegression(max_iter=1000).fit(IRIS.data, IRIS.target)

    async def __call__(self, request: Request) -> dict:
        return await self.classify(await request.json())

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    @capture_deployment(sink=SINK, model_version_fqn="iris-logreg:1")
    async def classify(self, flowers: list[dict]) -> list[dict]:
        """Return the species and the probability of each, per flower."""
        measurements = [[flower[name] for name in FEATURES] for flower in flowers]
        probabilities = self.model.predict_proba(measurements)
        return [
            {
                "label": SPECIES[int(row.argmax())],
                "probabilities": dict(zip(SPECIES, row.tolist(), strict=True)),
            }
            for row in probabilities
        ]


app = IrisClassifier.bind()


def ask(url: str, flower: dict) -> dict:
    """POST one flower and return the answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(flower).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main() -> None:
    """Start Ray and Serve on 127.0.0.1, ask about six flowers, shut down."""
    import ray

    port = int(os.environ.get("PORT", "8000"))
    temp_dir = tempfile.mkdtemp(prefix="ray-")  # rather than /tmp/ray
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(app, name="iris", route_prefix="/")
        flowers = [
            dict(zip(FEATURES, row.tolist(), strict=True)) for row in IRIS.data[::25]
        ]
        with ThreadPoolExecutor(len(flowers)) as pool:  # at once: one batch
            url = f"http://127.0.0.1:{port}/"
            answers = list(pool.map(lambda flower: ask(url, flower), flowers))
        for flower, answer in zip(flowers, answers, strict=True):
            print(flower, "->", answer["label"])
        serve.shutdown()  # each replica flushes its records first
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)

    records = open_sink(SINK).read_records()
    print(f"{len(records)} records in {SINK}")


if __name__ == "__main__":
    main()
