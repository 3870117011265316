"""The apps the HTTP benchmark serves: one trivial JSON endpoint, three ways.

- ``bare()``: a Starlette app with ``POST /predict`` (parse the JSON body,
  answer a label and three class probabilities);
- ``pure()``: the same app under ``PredictionLoggingMiddleware``;
- ``basehttp()``: the same app under an equivalent capture written as a
  Starlette ``BaseHTTPMiddleware`` (read both bodies, map them to rows and
  outputs with the same ``extract`` functions, record, add ``x-data-id``).

Each is a factory (``uvicorn http_apps:pure --factory``). The recorder's sink
is chosen by ``MLF_BENCH_SINK``: ``null`` (default: keeps nothing, so the
figure is the capture alone) or any sink URL such as ``jsonl:///path``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import NullSink
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlf_middleware import PredictionLoggingMiddleware, Recorder
from mlf_middleware.extract import outputs_from_body, rows_from_body

__all__ = ["BaseHTTPCapture", "bare", "basehttp", "body", "pure", "recorder"]

ANSWER = {"label": "b", "probabilities": {"a": 0.2, "b": 0.5, "c": 0.3}}


def body() -> bytes:
    """A request of about 1 KB: one row of 10 features, one of them text."""
    features = {
        "age": 42,
        "income": 55321.5,
        "tenure_months": 17,
        "num_products": 3,
        "balance": 1234.56,
        "credit_score": 702,
        "country": "DE",
        "segment": "retail",
        "is_active": True,
        "notes": "customer called about a card payment that was declined " * 14,
    }
    return json.dumps({"features": features}).encode()


async def predict(request: Request) -> JSONResponse:
    await request.json()
    return JSONResponse(ANSWER)


def recorder() -> Recorder:
    """The recorder of ``MLF_BENCH_SINK`` (default: a sink keeping nothing)."""
    url = os.environ.get("MLF_BENCH_SINK", "null")
    sink: Any = NullSink() if url == "null" else url
    return Recorder(sink, spool_dir=False)


def bare(middleware: list[Middleware] | None = None) -> Starlette:
    return Starlette(
        routes=[Route("/predict", predict, methods=["POST"])],
        middleware=middleware or [],
    )


def pure(recorder_: Recorder | None = None) -> Starlette:
    return bare(
        [Middleware(PredictionLoggingMiddleware, recorder=recorder_ or recorder())]
    )


class BaseHTTPCapture(BaseHTTPMiddleware):
    """The same capture as a BaseHTTPMiddleware (for comparison only)."""

    def __init__(self, app: Any, recorder: Recorder) -> None:
        super().__init__(app)
        self.recorder = recorder

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        if request.method not in ("POST", "PUT"):
            return await call_next(request)
        raw = await request.body()
        response = await call_next(request)
        content = b"".join([chunk async for chunk in response.body_iterator])
        headers = dict(response.headers)
        ids = self._record(raw, content, request)
        if ids:
            headers["x-data-id"] = ",".join(ids)
        return Response(content, status_code=response.status_code, headers=headers)

    def _record(self, raw: bytes, content: bytes, request: Request) -> list[str]:
        try:
            rows = rows_from_body(json.loads(raw))
            outputs = outputs_from_body(json.loads(content), len(rows))
        except ValueError:
            return []
        if outputs is None:
            return []
        raw_data = {"framework": "asgi", "method": "POST", "path": request.url.path}
        ids = []
        for row, output in zip(rows, outputs, strict=True):
            data_id = self.recorder.record(row, output, raw_data=raw_data)
            if data_id is not None:
                ids.append(data_id)
        return ids


def basehttp(recorder_: Recorder | None = None) -> Starlette:
    return bare([Middleware(BaseHTTPCapture, recorder=recorder_ or recorder())])
