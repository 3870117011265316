"""A throwaway PostgreSQL server for the test session, on loopback only.

``postgres_server`` (session fixture) finds the server binaries (Debian's
``/usr/lib/postgresql/<version>/bin``, else ``PATH``), runs ``initdb`` into a
fresh folder and starts the server on 127.0.0.1 at a free port and on a unix
socket, with ``fsync=off``. As root, ``initdb`` and ``pg_ctl`` run as the
``postgres`` system user (initdb refuses root); the data folder comes from
``tempfile.mkdtemp()`` and is handed to that user, because pytest's own
temporary folder is closed to other users. Socket connections are trusted;
TCP connections need the password, so tests exercise real authentication.
The server is stopped and its folder removed at the end of the session.
When the binaries are missing the fixture skips, saying how to install them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

__all__ = [
    "INSTALL_HINT",
    "PostgresServer",
    "find_bindir",
    "postgres_server",
    "running_server",
]

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with "
    "`apt-get update && apt-get install -y postgresql` (Debian/Ubuntu)"
)
DATABASE = "mlf_test"
ROLE = "mlf_app"
SUPERUSER = "mlf_admin"


@dataclass(frozen=True)
class PostgresServer:
    """Where the test server listens and how to log in."""

    host: str
    port: int
    socket_dir: str
    user: str
    password: str
    dbname: str

    def url(self, **query: str) -> str:
        """A TCP URL with the (URL-quoted) password, plus ``query`` options."""
        secret = quote(self.password, safe="")
        base = f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{self.dbname}"
        return base + _query(query)

    def socket_url(self, **query: str) -> str:
        """A unix-socket URL: no password needed (trusted locally)."""
        options = {"host": self.socket_dir, "port": str(self.port), **query}
        return f"postgresql://{self.user}@/{self.dbname}" + _query(options)

    def connect(self):  # -> psycopg.Connection
        """An autocommit connection over the socket, for tests' own checks."""
        import psycopg

        return psycopg.connect(
            host=self.socket_dir,
            port=self.port,
            user=self.user,
            dbname=self.dbname,
            autocommit=True,
        )


def _query(options: dict[str, str]) -> str:
    if not options:
        return ""
    return "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in options.items())


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl (newest Debian version first)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if os.access(Path(folder) / "initdb", os.X_OK):
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Runner:
    """Run server commands as the ``postgres`` user when we are root."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip(
                    "running as root and there is no 'postgres' system user to "
                    "run initdb as (the postgresql package creates it)"
                )
            self.user = "postgres"
            os.chown(base, entry.pw_uid, entry.pw_gid)

    def own(self, path: Path) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        return subprocess.run(
            [str(a) for a in args],
            user=self.user,
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Start a fresh server; stop it and remove its files on exit."""
    pytest.importorskip("psycopg", reason="psycopg (the postgres extra) missing")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(INSTALL_HINT)

    base = Path(tempfile.mkdtemp(prefix="mlf-pg-"))
    try:
        runner = _Runner(base)
        data, sockets = base / "data", base / "sockets"
        sockets.mkdir()
        runner.own(sockets)
        admin_password = secrets.token_urlsafe(16)
        _initdb(runner, bindir, data, admin_password)
        port = _start(runner, bindir, data, sockets)
        try:
            server = _provision(sockets, port)
            yield server
        finally:
            runner.run(bindir / "pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _initdb(runner: _Runner, bindir: Path, data: Path, password: str) -> None:
    pwfile = runner.base / "pwfile"
    pwfile.write_text(password + "\n")
    runner.own(pwfile)
    done = runner.run(
        bindir / "initdb",
        "-D", data,
        "-U", SUPERUSER,
        "--pwfile", pwfile,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E", "UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    )
    pwfile.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")


def _start(runner: _Runner, bindir: Path, data: Path, sockets: Path) -> int:
    """Start on a free loopback port; retry if another process took it."""
    log = runner.base / "server.log"
    for _ in range(3):
        port = _free_port()
        options = (
            f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=60 -c shared_buffers=32MB"
        )
        done = runner.run(
            bindir / "pg_ctl", "start", "-D", data, "-l", log, "-w", "-t", "60",
            "-s", "-o", options,
        )
        if done.returncode == 0:
            return port
    text = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"pg_ctl start failed:\n{done.stderr}\n{text[-2000:]}")


def _provision(sockets: Path, port: int) -> PostgresServer:
    """Create the test role (with a password that needs URL quoting) and db."""
    import psycopg
    from psycopg import sql

    password = "p@ss:w/rd%" + secrets.token_hex(8)
    with psycopg.connect(
        host=str(sockets), port=port, user=SUPERUSER, dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(ROLE)
            )
        )
    return PostgresServer(
        host="127.0.0.1",
        port=port,
        socket_dir=str(sockets),
        user=ROLE,
        password=password,
        dbname=DATABASE,
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (skips if not installed)."""
    with running_server() as server:
        yield server
