"""Schema versions: created on first use, applied once, and newer ones rejected."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state import StateSchemaError
from pipeline.state.migrations import MIGRATIONS, SCHEMA_VERSION, pending
from pipeline.state.sqlstore import SqlStore


def schema_version(store: SqlStore) -> int:
    return int(store._execute("SELECT version FROM shipline_schema").fetchone()[0])


def test_migrations_numbered_from_one():
    assert [migration.version for migration in MIGRATIONS] == list(
        range(1, len(MIGRATIONS) + 1)
    )
    assert MIGRATIONS[-1].version == SCHEMA_VERSION


def test_migrations_pending_above_current():
    assert pending(0) == MIGRATIONS
    assert pending(SCHEMA_VERSION) == ()


def test_migrations_applied_on_first_use(open_state: Callable[[FakeClock], SqlStore],
                                         caplog: pytest.LogCaptureFixture):
    with caplog.at_level("INFO", logger="shipline"):
        store = open_state(FakeClock())

    assert schema_version(store) == SCHEMA_VERSION
    assert sum("migrating the state schema" in message for message in caplog.messages) == len(
        MIGRATIONS
    )


def test_migrations_not_repeated_on_reopen(open_state: Callable[[FakeClock], SqlStore],
                                           caplog: pytest.LogCaptureFixture):
    open_state(FakeClock()).close()

    with caplog.at_level("INFO", logger="shipline"):
        store = open_state(FakeClock())

    assert schema_version(store) == SCHEMA_VERSION
    assert not [message for message in caplog.messages if "migrating" in message]


def test_migrations_newer_schema_rejected(open_state: Callable[[FakeClock], SqlStore]):
    store = open_state(FakeClock())
    deployment = store.start_deployment(pipeline="shop", environment="production",
                                        version="1.1", previous_version=None,
                                        strategy="rolling")
    store._execute("UPDATE shipline_schema SET version = ?", (SCHEMA_VERSION + 1,))

    with pytest.raises(StateSchemaError) as raised:
        open_state(FakeClock())

    assert str(raised.value) == (
        f"state database {store.location} has schema version {SCHEMA_VERSION + 1}, but "
        f"this shipline understands versions up to {SCHEMA_VERSION}: upgrade shipline, or "
        f"point --state at another database"
    )
    assert raised.value.exit_code == ExitCode.INVALID

    store._execute("UPDATE shipline_schema SET version = ?", (SCHEMA_VERSION,))
    assert open_state(FakeClock()).deployment(deployment.id).version == "1.1"
