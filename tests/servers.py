"""Run ASGI apps for tests: under real uvicorn on 127.0.0.1, or in-process.

``serve(app)`` / ``ServerThread`` start a real server on a free loopback
port in a background thread; ``call_asgi(app, ...)`` drives one HTTP
exchange in-process, message by message, and returns every sent message.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

__all__ = ["Exchange", "ServerThread", "call_asgi", "http_scope", "serve"]

JSON = (("content-type", "application/json"),)


class ServerThread:
    """One uvicorn server on a free loopback port, in a background thread.

    Use it as a context manager, or call ``start()`` and ``stop()``; the
    socket is bound before the thread starts, so the port never races.

    Args:
        app: the ASGI app.
        lifespan: uvicorn's lifespan mode ("on", "off" or "auto").
        http: uvicorn's HTTP implementation ("h11", "httptools" or "auto").
        **config: further ``uvicorn.Config`` options.
    """

    def __init__(
        self,
        app: Any,
        *,
        lifespan: str = "on",
        http: str = "auto",
        **config: Any,
    ) -> None:
        self.config = uvicorn.Config(
            app,
            lifespan=lifespan,
            http=http,
            ws="none",  # keeps the websockets package (and its warnings) out
            log_config=None,  # never rewrite the test process's logging
            log_level="warning",
            access_log=False,
            **config,
        )
        self.server = uvicorn.Server(self.config)
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and return once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.port = sock.getsockname()[1]

        self._thread = threading.Thread(
            target=self._run,
            args=(sock,),
            name=f"uvicorn-{self.port}",
            daemon=True,
        )
        self._thread.start()

        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn not ready within {timeout} s")
            time.sleep(0.01)  # polling the server's own flag, not the pipeline

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit (running lifespan shutdown) and join it."""
        thread = self._thread
        if thread is not None:
            self.server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                self.server.force_exit = True
                thread.join(timeout)
            self._thread = None

        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._error is not None:
            raise RuntimeError("uvicorn failed") from self._error

    def _run(self, sock: socket.socket) -> None:
        try:
            self.server.run(sockets=[sock])
        except BaseException as exc:  # surfaced by start() or stop()
            self._error = exc

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def serve(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 for the duration; yield its base URL."""
    server = ServerThread(app, **options)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@dataclass
class Exchange:
    """What an app sent for one in-process request."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        start = self._start()
        return None if start is None else start["status"]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        start = self._start()
        return [] if start is None else [tuple(h) for h in start["headers"]]

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"")
            for m in self.messages
            if m["type"] == "http.response.body"
        )

    def header(self, name: str) -> str | None:
        """The value of a response header (repeats joined by ", "), or None."""
        wanted = name.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in self.headers if k.lower() == wanted]
        return ", ".join(values) if values else None

    def _start(self) -> dict[str, Any] | None:
        for message in self.messages:
            if message["type"] == "http.response.start":
                return message
        return None


def http_scope(
    method: str = "POST",
    path: str = "/predict",
    headers: Sequence[tuple[str, str]] = JSON,
) -> dict[str, Any]:
    """An ASGI 3 HTTP scope as uvicorn would build it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call_asgi(
    app: Any,
    body: bytes | Sequence[bytes] = b"",
    *,
    method: str = "POST",
    path: str = "/predict",
    headers: Sequence[tuple[str, str]] = JSON,
    scope: dict[str, Any] | None = None,
    disconnect_early: bool = False,
) -> Exchange:
    """Run one HTTP exchange through ``app`` in-process.

    ``body`` may be a list of chunks, delivered as separate messages. After
    the body, ``receive()`` waits until the response is complete and then
    reports a disconnect, as a server does; with ``disconnect_early`` the
    disconnect comes at once, before any response.
    """
    chunks = [body] if isinstance(body, bytes | bytearray) else list(body)
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    exchange = Exchange()
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        if not disconnect_early:
            await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        exchange.messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope or http_scope(method, path, headers), receive, send)
    return exchange
