"""One real Ray Serve instance for the whole test session, on loopback only.

Ray talks to itself over the machine's own network address unless it runs
in a network namespace that has only loopback, so the ``ray_serve`` fixture
refuses (skips) anywhere else: run these tests with ``run_in_netns.sh``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.postgres import postgres_server

__all__ = ["ServeInstance", "loopback_only", "postgres_server", "ray_serve"]

# Set before Ray is imported (it reads them once). No usage reports; and
# token authentication, which Ray 2.60 turns on for a new local cluster,
# with a token held in memory: without one Ray writes ~/.ray/auth_token.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

NOT_ISOLATED = (
    "Ray Serve tests run only in a network namespace with nothing but "
    "loopback (Ray would use the machine's address): run them with "
    "tests/integrations/ray_serve/run_in_netns.sh"
)


@dataclass(frozen=True)
class ServeInstance:
    """The running Serve instance: where its HTTP proxy listens."""

    port: int
    start_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def loopback_only() -> bool:
    """Whether this process sees no network interface but ``lo``."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_serve() -> Iterator[ServeInstance]:
    """Start Ray and Serve once (about 10 to 25 s here); stop them at the end."""
    pytest.importorskip("ray.serve", reason="ray[serve] (the ray extra) missing")
    if not loopback_only():
        pytest.skip(NOT_ISOLATED)

    import ray
    from ray import serve

    # Short path: Ray's unix sockets live under it (108-byte limit).
    temp_dir = tempfile.mkdtemp(prefix="mlf-ray-")
    spool = os.path.join(temp_dir, "spool")
    port = _free_port()

    started = time.monotonic()
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _temp_dir=temp_dir,
            runtime_env={
                "env_vars": {"MLF_SPOOL_DIR": spool, "RAY_USAGE_STATS_ENABLED": "0"}
            },
        )
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        seconds = time.monotonic() - started
        print(f"Ray and Serve started in {seconds:.1f} s")
        yield ServeInstance(port, seconds)
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
