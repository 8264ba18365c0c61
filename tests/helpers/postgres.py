"""A real PostgreSQL 15 server on 127.0.0.1 for the state store tests.

:func:`postgres_server` is a session fixture: it runs ``initdb`` into a new temporary
directory and starts ``postgres`` on a free loopback port, with its unix socket in the
same directory, trust authentication and fsync off (the data is thrown away). The
binaries come from the Debian ``postgresql`` package. When they are missing, every test
that uses the fixture errors with a message that says to run
``scripts/install-system-deps``. PostgreSQL refuses to run as
root, so as root (as in CI) both programs run as the package's ``postgres`` user.

Tests get a fresh schema each from :meth:`PostgresServer.new_schema`, which is much
faster than a new database::

    def test_something(postgres_server):
        url = postgres_server.new_schema()
        store = PostgresStore(url, clock)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN_DIR = Path("/usr/lib/postgresql/15/bin")

#: The superuser that initdb creates. Authentication is "trust", so it has no password.
USER = "shipline"

#: Seconds to wait for the server to accept connections; it usually takes under one.
READY_TIMEOUT = 30.0

#: Attempts with a new port, in case another process takes the free port first.
START_ATTEMPTS = 3


@dataclass
class PostgresServer:
    """A running server: its port, data directory and log file."""

    port: int
    directory: Path
    log: Path
    _schemas: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database as the superuser, over TCP."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def new_schema(self) -> str:
        """Create an empty schema and return a URL whose search path is that schema."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._schemas)}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {name}")
        return f"{self.url}?options=-csearch_path%3D{name}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres_user(command: Sequence[str]) -> list[str]:
    """Prefix ``command`` so that it runs as ``postgres`` when this process is root."""
    if os.geteuid() != 0:
        return list(command)
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


def _make_directory() -> Path:
    # Under /tmp and not pytest's tmp_path: the postgres user must reach it, and
    # pytest's base directory is private to root. The path also has to stay short,
    # because a unix socket path is limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="shipline-pg-"))
    if os.geteuid() == 0:
        record = pwd.getpwnam("postgres")
        os.chown(directory, record.pw_uid, record.pw_gid)
    return directory


def _initdb(directory: Path) -> None:
    initdb = BIN_DIR / "initdb"
    if not initdb.exists():
        raise RuntimeError(f"{initdb} not found: run scripts/install-system-deps, which "
                           f"installs the Debian package postgresql")
    result = subprocess.run(
        _as_postgres_user([str(initdb), "-D", str(directory / "data"), "-U", USER,
                           "--auth=trust", "--encoding=UTF8", "--no-sync"]),
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed with exit code {result.returncode}:\n{result.stderr}")


#: Settings for a server whose data is thrown away: no waiting for the disk.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def _start(directory: Path, port: int, log: Path,
           settings: Sequence[str]) -> subprocess.Popen[bytes]:
    command = [
        str(BIN_DIR / "postgres"), "-D", str(directory / "data"),
        "-h", "127.0.0.1", "-p", str(port), "-k", str(directory),
    ]
    for setting in settings:
        command += ["-c", setting]
    with log.open("ab") as output:
        return subprocess.Popen(_as_postgres_user(command), stdout=output,
                                stderr=subprocess.STDOUT)


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    import psycopg

    deadline = time.monotonic() + READY_TIMEOUT
    url = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2).close()
            return True
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    # SIGINT is PostgreSQL's fast shutdown: it ends sessions and stops at once.
    process.send_signal(2)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_postgres(settings: Sequence[str] = FAST_SETTINGS) -> Iterator[PostgresServer]:
    """Run a PostgreSQL server with ``settings`` (``name=value``) inside the block.

    The default settings skip fsync; pass ``()`` for PostgreSQL's durable defaults, as
    a benchmark should. The data directory is removed afterwards.
    """
    directory = _make_directory()
    log = directory / "postgres.log"
    try:
        _initdb(directory)
        process = None
        for _ in range(START_ATTEMPTS):
            port = _free_port()
            process = _start(directory, port, log, settings)
            if _wait_ready(process, port):
                break
            _stop(process)
            process = None
        if process is None:
            raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text(errors='replace')}")

        try:
            yield PostgresServer(port, directory, log)
        finally:
            _stop(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, without fsync."""
    with running_postgres() as server:
        yield server
