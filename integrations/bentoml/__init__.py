"""Record the predictions of BentoML 1.4 services.

``capture_service`` wraps a service's ``@bentoml.api`` functions (one record
per row, adaptive batching included); ``request_rows`` reads BentoML request
bodies for ``PredictionLoggingMiddleware`` added with
``Service.add_asgi_middleware``. Set ``BENTOML_DO_NOT_TRACK=true`` wherever
BentoML runs: otherwise it sends usage analytics off the machine.
"""

from __future__ import annotations

from ._body import request_rows
from ._service import capture_service

__all__ = ["capture_service", "request_rows"]
