"""Fixtures of the state store tests: one store per backend, on a FakeClock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.postgres import PostgresServer, postgres_server  # noqa: F401 (a fixture)
from pipeline.clock import Clock, FakeClock
from pipeline.state.postgresql import PostgresStore
from pipeline.state.sqlite import SqliteStore
from pipeline.state.sqlstore import SqlStore

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_state(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[Clock], SqlStore]]:
    """Return a function that opens one more store on the same database with a clock.

    Every test gets its own database: a file in ``tmp_path``, or a new PostgreSQL
    schema. Stores opened through the function are closed after the test.
    """
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.new_schema()
    opened: list[SqlStore] = []

    def open_store(clock: Clock) -> SqlStore:
        store: SqlStore
        if backend == "postgresql":
            store = PostgresStore(url, clock)
        else:
            store = SqliteStore(tmp_path / "state.db", clock)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(open_state: Callable[[Clock], SqlStore], clock: FakeClock) -> SqlStore:
    """A new, empty store of each backend on the ``clock`` fixture."""
    return open_state(clock)


@pytest.fixture
def state_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A ``--state`` value of a new, empty database of each backend."""
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.new_schema()
    return str(tmp_path / "state.db")
