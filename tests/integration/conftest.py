"""Fixtures of the integration tests that use a state store."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.postgres import PostgresServer, postgres_server  # noqa: F401 (a fixture)

#: The state backends that the state tests run against.
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ``--state`` value of a new, empty store of each backend."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.new_schema()
    return str(tmp_path / "state.db")
