"""Ray Serve adapter: record every prediction of a deployment, replicas included.

``capture_deployment`` decorates a deployment class (or one of its methods,
or a function deployment); ``ServeRecorder`` carries the sink configuration
to the replicas, each of which builds its own recorder. For a FastAPI
ingress, add ``PredictionLoggingMiddleware`` with a ``ServeRecorder`` to the
app. See docs/ray_serve.md.
"""

from __future__ import annotations

from ._capture import capture_deployment
from ._recorder import ServeRecorder

__all__ = ["ServeRecorder", "capture_deployment"]
