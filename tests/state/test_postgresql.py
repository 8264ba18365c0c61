"""The PostgreSQL backend: connection errors, secrets in messages, and waits."""

from __future__ import annotations

import socket

import psycopg
import pytest

from helpers.postgres import PostgresServer
from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state import StateBusyError, StateConnectionError
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
