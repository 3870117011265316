"""A collector for the HTTP sink tests: a Starlette app served by uvicorn.

The collector keeps every request it receives (headers, body, the records in
it, the status it answered) and can be told to misbehave: answer a planned
status (500s, 429 with Retry-After, redirects), stall before answering,
refuse batches holding a marked record (413/422), or demand a credential.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from servers import ServerThread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlf_middleware.records import Actual, Prediction, from_wire
from mlf_middleware.sinks.http import HTTPSink

__all__ = [
    "Answer",
    "Collector",
    "Received",
    "collector_server",
    "make_sink_and_reader",
]

CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"


@dataclass
class Answer:
    """How the collector answers one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds to wait before answering


@dataclass
class Received:
    """One request as the collector saw it."""

    path: str
    headers: dict[str, str]
    raw: bytes  # the body as sent
    body: bytes  # after gzip, if any
    payload: Any  # the decoded JSON
    records: list[dict[str, Any]]  # the wire records it carried
    status: int  # what the collector answered


class Collector:
    """Record what arrives; answer as planned, else 200."""

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token  # the Authorization value required, if any
        self.requests: list[Received] = []
        self._plan: deque[Answer] = deque()
        self._reject: dict[str, int] = {}
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["POST", "GET"])]
        )

    def answer_next(self, *answers: Answer | int) -> None:
        """Answer the next requests so, one each, in order."""
        with self._lock:
            self._plan.extend(
                a if isinstance(a, Answer) else Answer(a) for a in answers
            )

    def reject_batches_with(self, data_id: str, status: int = 422) -> None:
        """Answer ``status`` to every batch holding a record of ``data_id``."""
        with self._lock:
            self._reject[data_id] = status

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """The wire records of every request answered 2xx, in arrival order."""
        with self._lock:
            return [
                r for req in self.requests if 200 <= req.status < 300
                for r in req.records
            ]

    def read(self) -> list[Prediction | Actual]:
        """The delivered records, each record_id once (first copy kept)."""
        seen: set[str] = set()
        out: list[Prediction | Actual] = []
        for obj in self.delivered:
            if obj["record_id"] not in seen:
                seen.add(obj["record_id"])
                out.append(from_wire(obj))
        return out

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        body = raw
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(raw)
        try:
            payload = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return Response(status_code=400)
        records = _records(request.headers.get("content-type", ""), payload)

        answer = self._decide(request, records)
        with self._lock:
            self.requests.append(
                Received(
                    request.url.path, dict(request.headers), raw, body,
                    payload, records, answer.status,
                )
            )
        if answer.stall:
            await asyncio.sleep(answer.stall)
        return Response(status_code=answer.status, headers=answer.headers)

    def _decide(self, request: Request, records: list[dict[str, Any]]) -> Answer:
        with self._lock:
            if self.token and request.headers.get("authorization") != self.token:
                return Answer(401)
            if self._plan:
                return self._plan.popleft()
            for record in records:
                if record.get("data_id") in self._reject:
                    return Answer(self._reject[record["data_id"]])
        return Answer(200)


def _records(content_type: str, payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, list):
        return []
    if content_type.startswith(CLOUDEVENTS_BATCH):
        return [event["data"] for event in payload]
    return payload


@contextmanager
def collector_server(
    collector: Collector | None = None, **config: Any
) -> Iterator[tuple[Collector, str]]:
    """Serve a collector on 127.0.0.1; yield it and its base URL."""
    collector = collector or Collector()
    server = ServerThread(
        collector.app, lifespan="off", timeout_graceful_shutdown=1, **config
    )
    server.start()
    try:
        scheme = "https" if "ssl_certfile" in config else "http"
        yield collector, f"{scheme}://127.0.0.1:{server.port}"
    finally:
        server.stop()


@contextmanager
def make_sink_and_reader() -> Iterator[
    tuple[HTTPSink, Callable[[], list[Prediction | Actual]]]
]:
    """An HTTPSink posting to a fresh collector, and the collector's reader
    (the records it accepted, each record_id once)."""
    with collector_server() as (collector, base):
        sink = HTTPSink.from_url(f"{base}/ingest")
        try:
            yield sink, collector.read
        finally:
            sink.close()
