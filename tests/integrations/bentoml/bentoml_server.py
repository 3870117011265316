"""Run ``bentoml serve`` on a free loopback port for tests, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["BentoServer"]

BENTOML = Path(sys.executable).with_name("bentoml")


class BentoServer:
    """One ``bentoml serve <target>`` process bound to 127.0.0.1.

    Use it as a context manager: entering starts the server and waits until
    ``/readyz`` answers 200; leaving stops it (SIGTERM to its pid, which
    shuts the workers down through their lifespan, then SIGKILL to its
    process group if it has not exited in time).

    Args:
        target: ``module:Service`` as ``bentoml serve`` takes it.
        working_dir: the folder the module is imported from.
        home: BENTOML_HOME for the server (keeps BentoML out of ~); the
            server's log is written there too.
        env: further environment variables for the server.
    """

    def __init__(
        self,
        target: str,
        *,
        working_dir: Path,
        home: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.target = target
        self.working_dir = working_dir
        self.env = {
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "true",
            "BENTOML_HOME": str(home),
            **(env or {}),
        }
        self.port = _free_port()
        self.log = home / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BentoServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        """Start the server; return once it is ready, or raise with its log."""
        command = [
            str(BENTOML),
            "serve",
            self.target,
            "--working-dir",
            str(self.working_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers share its process group
            )

        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bentoml serve did not start:\n{self.output()}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop the server by its pid; return its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

        return process.returncode

    def output(self) -> str:
        """What the server printed, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
