"""Serve a scikit-learn iris classifier with BentoML, recording every prediction.

Run from the repository root (BentoML sends usage analytics unless told not to):

    BENTOML_DO_NOT_TRACK=true bentoml serve bentoml_service:IrisClassifier \
        --working-dir examples --host 127.0.0.1 --port 3000

then ask it about a flower:

    curl -s -X POST http://127.0.0.1:3000/classify \
        -H 'content-type: application/json' \
        -d '{"measurements": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'

Each row becomes one record in ``iris_predictions.db`` (or the sink that
``MLF_SINK`` names): its four measurements, the predicted species, the
probability of each species, and the service and API that answered. The
worker flushes its records when the server shuts down (Ctrl+C).
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlf_middleware.integrations.bentoml import capture_service

IRIS = load_iris()
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = [str(name) for name in IRIS.target_names]

# Small enough to train at import, in each worker, in a few milliseconds.
MODEL = LogisticRegression(max_iter=1000).fit(IRIS.data, IRIS.target)


@capture_service(
    sink=os.environ.get("MLF_SINK", "sqlite:///iris_predictions.db"),
    model_version_fqn="iris-logreg:1",
    feature_names=FEATURES,
)
@bentoml.service(workers=1)
class IrisClassifier:
    """Classify iris flowers from their sepal and petal measurements (cm)."""

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def classify(self, measurements: np.ndarray) -> list[dict]:
        """Return the species and the probability of each, per flower."""
        probabilities = MODEL.predict_proba(measurements)
        return [
            {
                "label": SPECIES[int(row.argmax())],
                "probabilities": dict(zip(SPECIES, row.tolist(), strict=True)),
            }
            for row in probabilities
        ]
