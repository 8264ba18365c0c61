"""Behaviour that every state backend shares, run against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state import (
    DeploymentOutcome,
    JournalAppend,
    LockHeld,
    LockLost,
    RecordNotFound,
    RollbackOutcome,
)
from pipeline.state.sqlstore import SqlStore

START = datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc)


def start(store: SqlStore, environment: str = "production", version: str = "1.1",
          previous: str | None = "1.0") -> str:
    deployment = store.start_deployment(
        pipeline="shop", environment=environment, version=version,
        previous_version=previous, strategy="rolling",
    )
    return deployment.id


def test_deployment_start_records_fields(store: SqlStore, clock: FakeClock):
    deployment = store.start_deployment(
        pipeline="shop", environment="production", version="1.4.2", previous_version="1.4.1",
        strategy="canary", actor="octocat", job_url="https://ci.example/jobs/7",
        commit="0123abcd",
    )

    assert len(deployment.id) == 32
    assert deployment.started == START
    assert deployment.finished is None
    assert deployment.outcome is None
    assert deployment.unfinished
    assert store.deployment(deployment.id) == deployment


def test_deployment_finish_sets_outcome_and_time(store: SqlStore, clock: FakeClock):
    deployment_id = start(store)
    clock.advance(90)

    finished = store.finish_deployment(deployment_id, DeploymentOutcome.SUCCEEDED)

    assert finished.finished == START + timedelta(seconds=90)
    assert finished.outcome is DeploymentOutcome.SUCCEEDED
    assert store.deployment(deployment_id) == finished


def test_deployment_finish_again_replaces_outcome(store: SqlStore):
    deployment_id = start(store)
    store.finish_deployment(deployment_id, DeploymentOutcome.INTERRUPTED)

    finished = store.finish_deployment(deployment_id, DeploymentOutcome.RECOVERED)

    assert finished.outcome is DeploymentOutcome.RECOVERED


def test_deployment_unknown_id_raises(store: SqlStore):
    with pytest.raises(RecordNotFound) as raised:
        store.finish_deployment("nope", DeploymentOutcome.SUCCEEDED)

    assert str(raised.value) == f"no deployment with id nope in {store.location}"
    assert raised.value.exit_code == ExitCode.INVALID
    with pytest.raises(RecordNotFound):
        store.deployment("nope")


def test_deployment_times_are_utc(store: SqlStore):
    deployment = store.deployment(start(store))

    assert deployment.started.tzinfo is not None
    assert deployment.started.utcoffset() == timedelta(0)


def test_unfinished_lists_only_open_ones_oldest_first(store: SqlStore, clock: FakeClock):
    first = start(store, version="1.1")
    clock.advance(1)
    done = start(store, version="1.2")
    clock.advance(1)
    second = start(store, version="1.3")
    start(store, environment="staging")
    store.finish_deployment(done, DeploymentOutcome.SUCCEEDED)

    unfinished = store.unfinished_deployments("production")

    assert [deployment.id for deployment in unfinished] == [first, second]


def test_last_successful_version_newest_success(store: SqlStore, clock: FakeClock):
    assert store.last_successful_version("production") is None
    for version, outcome in [("1.1", DeploymentOutcome.SUCCEEDED),
                             ("1.2", DeploymentOutcome.SUCCEEDED),
                             ("1.3", DeploymentOutcome.ROLLED_BACK)]:
        store.finish_deployment(start(store, version=version), outcome)
        clock.advance(10)
    start(store, version="1.4")
    store.finish_deployment(start(store, environment="staging", version="2.0"),
                            DeploymentOutcome.SUCCEEDED)

    assert store.last_successful_version("production") == "1.2"
    assert store.last_successful_version("staging") == "2.0"


def test_history_newest_first_with_limit(store: SqlStore, clock: FakeClock):
    for index in range(5):
        start(store, version=f"1.{index}")
        clock.advance(60)
    start(store, environment="staging", version="9.9")

    history = store.history("production", limit=3)

    assert [deployment.version for deployment in history] == ["1.4", "1.3", "1.2"]
    assert [deployment.version for deployment in store.history(limit=2)] == ["9.9", "1.4"]
    assert store.history("production", limit=0) == []
    assert store.history("nowhere") == []


def test_history_same_time_orders_by_insertion(store: SqlStore):
    for index in range(3):
        start(store, version=f"1.{index}")

    history = store.history("production")

    assert [deployment.version for deployment in history] == ["1.2", "1.1", "1.0"]


def test_environments_from_deployments_and_locks(store: SqlStore):
    start(store, environment="staging")
    start(store, environment="production")
    store.acquire_lock("qa", "job-1", lease=60)

    assert store.environments() == ["production", "qa", "staging"]


def test_journal_append_numbers_entries(store: SqlStore, clock: FakeClock):
    deployment_id = start(store)
    first = store.append_journal(deployment_id, stage="production", step="deploy",
                                 operation="deploy", instances=["web-1", "web-2"],
                                 version="1.1")
    clock.advance(5)
    second = store.append_journal(deployment_id, stage="production", step="deploy",
                                  operation="set_weight", instances=[], version=None,
                                  details={"weight": 20, "router": "nginx"})

    assert (first.seq, second.seq) == (1, 2)
    assert first.instances == ("web-1", "web-2")
    assert first.done is False
    assert second.time == START + timedelta(seconds=5)
    assert store.journal(deployment_id) == [first, second]
    assert store.journal(deployment_id)[1].details == {"router": "nginx", "weight": 20}


def test_journal_complete_marks_done(store: SqlStore):
    deployment_id = start(store)
    entry = store.append_journal(deployment_id, stage="production", step="deploy",
                                 operation="deploy", instances=["web-1"], version="1.1")

    completed = store.complete_journal(deployment_id, entry.seq)

    assert completed.done is True
    assert completed.seq == entry.seq
    assert [item.done for item in store.journal(deployment_id)] == [True]


def test_journal_of_other_deployment_kept_apart(store: SqlStore):
    first = start(store)
    second = start(store)
    store.append_journal(first, stage="s", step="d", operation="deploy",
                         instances=["web-1"], version="1.1")

    entry = store.append_journal(second, stage="s", step="d", operation="deploy",
                                 instances=["web-2"], version="1.1")

    assert entry.seq == 1
    assert [item.instances for item in store.journal(first)] == [("web-1",)]


def test_journal_append_many_in_order(store: SqlStore):
    first = start(store)
    second = start(store)
    store.append_journal(first, stage="s", step="d", operation="deploy",
                         instances=["web-1"], version="1.1")

    entries = store.append_journal_many([
        JournalAppend(first, "s", "d", "deploy", ("web-2",), "1.1", {"before": "1.0"}),
        JournalAppend(second, "s", "d", "deploy", ("web-3",), "1.1"),
        JournalAppend(first, "s", "d", "deploy", ("web-4",), "1.1"),
    ])

    assert [(entry.deployment_id, entry.seq) for entry in entries] == [
        (first, 2), (second, 1), (first, 3),
    ]
    assert store.journal(first)[1:] == [entries[0], entries[2]]
    assert store.journal(first)[1].details == {"before": "1.0"}


def test_journal_append_many_all_or_nothing(store: SqlStore):
    deployment_id = start(store)

    with pytest.raises(RecordNotFound):
        store.append_journal_many([
            JournalAppend(deployment_id, "s", "d", "deploy", ("web-1",), "1.1"),
            JournalAppend("nope", "s", "d", "deploy", ("web-2",), "1.1"),
        ])

    assert store.journal(deployment_id) == []


def test_journal_append_many_marks_done(store: SqlStore, caplog: pytest.LogCaptureFixture):
    deployment_id = start(store)
    first = store.append_journal(deployment_id, stage="s", step="d", operation="deploy",
                                 instances=["web-1"], version="1.1")

    [second] = store.append_journal_many(
        [JournalAppend(deployment_id, "s", "d", "deploy", ("web-2",), "1.1")],
        done=[(deployment_id, first.seq), (deployment_id, 9)],
    )

    assert [(item.seq, item.done) for item in store.journal(deployment_id)] == [
        (first.seq, True), (second.seq, False)]
    assert f"journal entry 9 of deployment {deployment_id} is not in" in caplog.text


def test_journal_complete_many(store: SqlStore):
    deployment_id = start(store)
    entries = store.append_journal_many([
        JournalAppend(deployment_id, "s", "d", "deploy", (f"web-{n}",), "1.1")
        for n in range(3)
    ])

    store.complete_journal_many([(deployment_id, entries[0].seq),
                                 (deployment_id, entries[2].seq)])

    assert [item.done for item in store.journal(deployment_id)] == [True, False, True]


def test_journal_complete_many_unknown_marks_none(store: SqlStore):
    deployment_id = start(store)
    entry = store.append_journal(deployment_id, stage="s", step="d", operation="deploy",
                                 instances=["web-1"], version="1.1")

    with pytest.raises(RecordNotFound):
        store.complete_journal_many([(deployment_id, entry.seq), (deployment_id, 9)])

    assert [item.done for item in store.journal(deployment_id)] == [False]


def test_journal_unknown_records_raise(store: SqlStore):
    deployment_id = start(store)

    with pytest.raises(RecordNotFound) as unknown_deployment:
        store.append_journal("nope", stage="s", step="d", operation="deploy",
                             instances=[], version=None)
    with pytest.raises(RecordNotFound) as unknown_entry:
        store.complete_journal(deployment_id, 3)

    assert str(unknown_deployment.value) == f"no deployment with id nope in {store.location}"
    assert str(unknown_entry.value) == (
        f"no journal entry 3 of deployment {deployment_id} in {store.location}"
    )


def test_rollback_start_and_finish(store: SqlStore, clock: FakeClock):
    deployment_id = start(store)
    rollback = store.start_rollback(environment="production", to_version="1.0",
                                    from_version="1.1", reason="error rate 4% > 1%",
                                    deployment_id=deployment_id, actor="octocat", fast=True)
    clock.advance(30)

    finished = store.finish_rollback(rollback.id, RollbackOutcome.SUCCEEDED)

    assert rollback.started == START
    assert rollback.outcome is None
    assert finished.finished == START + timedelta(seconds=30)
    assert finished.outcome is RollbackOutcome.SUCCEEDED
    assert finished.fast is True
    assert finished.deployment_id == deployment_id
    assert store.rollbacks("production") == [finished]


def test_rollback_without_deployment(store: SqlStore, clock: FakeClock):
    first = store.start_rollback(environment="production", to_version="1.0",
                                 from_version="1.1", reason="manual")
    clock.advance(1)
    second = store.start_rollback(environment="production", to_version="0.9",
                                  from_version=None, reason="manual")

    assert [item.id for item in store.rollbacks("production")] == [second.id, first.id]
    assert store.rollbacks("production", limit=1) == [second]
    assert store.rollbacks("staging") == []


def test_rollback_unknown_ids_raise(store: SqlStore):
    with pytest.raises(RecordNotFound) as unknown_rollback:
        store.finish_rollback("nope", RollbackOutcome.FAILED)
    with pytest.raises(RecordNotFound):
        store.start_rollback(environment="production", to_version="1.0", from_version=None,
                             reason="r", deployment_id="nope")

    assert str(unknown_rollback.value) == f"no rollback with id nope in {store.location}"
    assert store.rollbacks("production") == []


def test_lock_acquire_returns_lease(store: SqlStore):
    lock = store.acquire_lock("production", "https://ci.example/jobs/7", lease=60)

    assert lock.owner == "https://ci.example/jobs/7"
    assert lock.acquired == START
    assert lock.heartbeat == START
    assert lock.expires == START + timedelta(seconds=60)
    assert store.lock_status("production") == lock
    assert store.lock_status("staging") is None


def test_lock_held_names_owner_and_since(store: SqlStore, clock: FakeClock):
    store.acquire_lock("production", "https://ci.example/jobs/7", lease=60)
    clock.advance(59)

    with pytest.raises(LockHeld) as raised:
        store.acquire_lock("production", "https://ci.example/jobs/8", lease=60)

    assert str(raised.value) == (
        "environment 'production' is locked by https://ci.example/jobs/7 since "
        "2027-01-15 08:00:00 UTC (lease expires 2027-01-15 08:01:00 UTC unless renewed): "
        "wait with --lock-wait, or run 'shipline lock release production --force --reason TEXT' if "
        "that run is gone"
    )
    assert raised.value.exit_code == ExitCode.LOCKED
    assert raised.value.lock.owner == "https://ci.example/jobs/7"


def test_lock_same_owner_text_still_held(store: SqlStore):
    store.acquire_lock("production", "runner/12", lease=60)

    with pytest.raises(LockHeld):
        store.acquire_lock("production", "runner/12", lease=60)


def test_lock_other_environment_independent(store: SqlStore):
    store.acquire_lock("production", "job-1", lease=60)

    lock = store.acquire_lock("staging", "job-2", lease=60)

    assert lock.environment == "staging"


def test_lock_expired_is_taken_over(store: SqlStore, clock: FakeClock,
                                    caplog: pytest.LogCaptureFixture):
    old = store.acquire_lock("production", "job-1", lease=60)
    clock.advance(60)

    with caplog.at_level("WARNING", logger="shipline"):
        new = store.acquire_lock("production", "job-2", lease=60)

    assert new.owner == "job-2"
    assert new.token != old.token
    assert store.lock_status("production") == new
    assert ("took over the lock of production from job-1, whose lease expired at "
            "2027-01-15 08:01:00 UTC") in caplog.messages


def test_lock_renew_extends_lease(store: SqlStore, clock: FakeClock):
    lock = store.acquire_lock("production", "job-1", lease=60)
    clock.advance(50)

    renewed = store.renew_lock(lock, lease=60)
    clock.advance(50)

    assert renewed.expires == START + timedelta(seconds=110)
    assert renewed.heartbeat == START + timedelta(seconds=50)
    assert renewed.acquired == START
    assert store.lock_status("production") == renewed
    with pytest.raises(LockHeld):
        store.acquire_lock("production", "job-2", lease=60)


def test_lock_renew_after_expiry_if_not_taken(store: SqlStore, clock: FakeClock):
    lock = store.acquire_lock("production", "job-1", lease=60)
    clock.advance(120)

    renewed = store.renew_lock(lock, lease=60)

    assert renewed.expires == START + timedelta(seconds=180)


def test_lock_renew_after_takeover_raises(store: SqlStore, clock: FakeClock):
    lock = store.acquire_lock("production", "job-1", lease=60)
    clock.advance(61)
    store.acquire_lock("production", "job-2", lease=60)

    with pytest.raises(LockLost) as raised:
        store.renew_lock(lock, lease=60)

    assert str(raised.value) == (
        "lost the lock on environment 'production' (now held by job-2): "
        "stop changing the environment"
    )
    assert raised.value.exit_code == ExitCode.LOCKED
    assert store.lock_status("production").owner == "job-2"


def test_lock_renew_after_release_raises(store: SqlStore):
    lock = store.acquire_lock("production", "job-1", lease=60)
    store.release_lock(lock)

    with pytest.raises(LockLost) as raised:
        store.renew_lock(lock, lease=60)

    assert str(raised.value) == (
        "lost the lock on environment 'production' (nobody holds it now): "
        "stop changing the environment"
    )
    assert store.lock_status("production") is None


def test_lock_release_frees_it(store: SqlStore):
    lock = store.acquire_lock("production", "job-1", lease=60)

    assert store.release_lock(lock) is True
    assert store.lock_status("production") is None
    assert store.acquire_lock("production", "job-2", lease=60).owner == "job-2"


def test_lock_release_with_old_token_keeps_new_lock(store: SqlStore, clock: FakeClock):
    old = store.acquire_lock("production", "job-1", lease=60)
    clock.advance(61)
    new = store.acquire_lock("production", "job-2", lease=60)

    assert store.release_lock(old) is False
    assert store.lock_status("production") == new


def test_lock_force_release_is_recorded(store: SqlStore, clock: FakeClock):
    lock = store.acquire_lock("production", "job-1", lease=600)
    clock.advance(30)

    released = store.force_release_lock("production", "alice", "runner died")

    assert released == lock
    assert store.lock_status("production") is None
    [record] = store.forced_releases("production")
    assert record.owner == "job-1"
    assert record.acquired == START
    assert record.released == START + timedelta(seconds=30)
    assert record.released_by == "alice"
    assert record.reason == "runner died"


def test_lock_force_release_without_lock(store: SqlStore):
    assert store.force_release_lock("production", "alice", "stuck") is None
    assert store.forced_releases("production") == []


def test_lock_lease_must_be_positive(store: SqlStore):
    with pytest.raises(ValueError, match="a lock lease must be positive, not 0 s"):
        store.acquire_lock("production", "job-1", lease=0)


def test_store_reopened_keeps_records(open_state: Callable[[FakeClock], SqlStore],
                                      clock: FakeClock):
    first = open_state(clock)
    deployment_id = start(first)
    lock = first.acquire_lock("production", "job-1", lease=60)
    first.close()

    second = open_state(clock)

    assert second.deployment(deployment_id).version == "1.1"
    assert second.lock_status("production") == lock


def test_store_two_connections_see_each_other(open_state: Callable[[FakeClock], SqlStore],
                                              clock: FakeClock):
    first = open_state(clock)
    second = open_state(clock)
    first.acquire_lock("production", "job-1", lease=60)

    with pytest.raises(LockHeld):
        second.acquire_lock("production", "job-2", lease=60)


def test_store_close_twice_is_harmless(store: SqlStore):
    store.close()
    store.close()
