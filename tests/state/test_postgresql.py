"""The PostgreSQL backend: connection errors, secrets in messages, and waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import psycopg
import pytest

from helpers.postgres import PostgresServer
from pipeline.clock import FakeClock, SystemClock
from pipeline.exitcodes import ExitCode
from pipeline.state import Heartbeat, StateBusyError, StateConnectionError
from pipeline.state.postgresql import PostgresStore


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_postgresql_refused_connection_hides_password():
    port = closed_port()

    with pytest.raises(StateConnectionError) as raised:
        PostgresStore(f"postgresql://deploy:s3cret@127.0.0.1:{port}/state", FakeClock())

    assert str(raised.value) == (
        f"cannot use state database postgresql://deploy:***@127.0.0.1:{port}/state: "
        f'connection failed: connection to server at "127.0.0.1", port {port} failed: '
        f"Connection refused: check the URL, that the server runs and accepts this user, "
        f"and the PG* variables"
    )
    assert raised.value.exit_code == ExitCode.INVALID


def test_postgresql_invalid_url_hides_password():
    with pytest.raises(StateConnectionError) as raised:
        PostgresStore("postgresql://deploy:s3cret@127.0.0.1/state?colour=blue", FakeClock())

    assert str(raised.value) == (
        "invalid state database URL postgresql://deploy:***@127.0.0.1/state?colour=blue: "
        'invalid URI query parameter: "colour": write postgresql://USER@HOST[:PORT]/DATABASE'
    )
    assert "s3cret" not in str(raised.value)


def test_postgresql_missing_database(postgres_server: PostgresServer):
    url = f"postgresql://shipline@127.0.0.1:{postgres_server.port}/nosuch"

    with pytest.raises(StateConnectionError) as raised:
        PostgresStore(url, FakeClock())

    assert str(raised.value) == (
        f"cannot use state database {url}: connection failed: connection to server at "
        f'"127.0.0.1", port {postgres_server.port} failed: FATAL:  database "nosuch" does '
        f"not exist: check the URL, that the server runs and accepts this user, and the "
        f"PG* variables"
    )


def test_postgresql_busy_environment_exits_locked(postgres_server: PostgresServer):
    url = postgres_server.new_schema()
    store = PostgresStore(url, FakeClock(), lock_timeout=0.1)
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("INSERT INTO locks VALUES ('production', 'job-0', 't', now(), now(), now())")

        with pytest.raises(StateBusyError) as raised:
            store.acquire_lock("production", "job-1", lease=60)
        other.execute("ROLLBACK")

    assert str(raised.value) == (
        f"state database {url} is busy: another process kept an environment locked for "
        f"more than 0.1 s; try again"
    )
    assert raised.value.exit_code == ExitCode.LOCKED
    assert store.lock_status("production") is None
    store.close()


def test_postgresql_times_in_utc_whatever_server_zone(postgres_server: PostgresServer):
    url = postgres_server.new_schema()
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute("ALTER ROLE shipline SET timezone = 'Asia/Kolkata'")
    try:
        with PostgresStore(url, FakeClock()) as store:
            deployment = store.start_deployment(
                pipeline="shop", environment="production", version="1.1",
                previous_version=None, strategy="rolling",
            )
            read = store.deployment(deployment.id)
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            admin.execute("ALTER ROLE shipline RESET timezone")

    assert read.started == deployment.started
    assert read.started.utcoffset() is not None
    assert str(read.started.tzinfo) == "UTC"


def terminate(server: PostgresServer, store: PostgresStore) -> None:
    """End the server session of ``store``, as a server restart would."""
    pid = store._connection.info.backend_pid
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_postgresql_reconnects_after_lost_connection(postgres_server: PostgresServer,
                                                     caplog: pytest.LogCaptureFixture):
    store = PostgresStore(postgres_server.new_schema(), FakeClock())
    lock = store.acquire_lock("production", "job-1", lease=60)
    terminate(postgres_server, store)

    with pytest.raises(StateConnectionError) as raised:
        store.lock_status("production")
    with caplog.at_level("WARNING", logger="shipline"):
        renewed = store.renew_lock(lock, lease=120)

    assert str(raised.value).startswith(f"cannot use state database {store.location}: ")
    assert raised.value.exit_code == ExitCode.INVALID
    assert renewed.expires > lock.expires
    assert store.lock_status("production") == renewed
    assert caplog.messages == [
        f"connection to state database {store.location} was lost, reconnecting"
    ]
    store.close()


def test_postgresql_heartbeat_survives_lost_connection(postgres_server: PostgresServer):
    url = postgres_server.new_schema()
    clock = SystemClock()
    store = PostgresStore(url, clock)
    lock = store.acquire_lock("production", "job-1", lease=30)
    opened: list[PostgresStore] = []

    def open_heartbeat_store() -> PostgresStore:
        opened.append(PostgresStore(url, clock))
        return opened[-1]

    heartbeat = Heartbeat(open_heartbeat_store, lock, lease=30, clock=clock, interval=0.02)
    heartbeat.start()
    first = wait_for(lambda: heartbeat.lock.heartbeat > lock.heartbeat)
    terminate(postgres_server, opened[0])
    dropped_at = heartbeat.lock.heartbeat
    second = wait_for(lambda: store.lock_status("production").heartbeat > dropped_at
                      and heartbeat.lock.heartbeat > dropped_at)
    heartbeat.stop()

    assert first
    assert second
    assert not heartbeat.lost.is_set()
    assert store.release_lock(heartbeat.lock) is True
    store.close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False
