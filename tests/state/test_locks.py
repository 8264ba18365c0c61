"""Lock owners, waiting for a lock with backoff, and the heartbeat that renews it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from pipeline.cienv import CiJob
from pipeline.clock import Clock, FakeClock, SystemClock
from pipeline.exitcodes import ExitCode
from pipeline.state import (
    Heartbeat,
    LockHeld,
    LockLost,
    LockWaitCancelled,
    default_owner,
    wait_for_lock,
)
from pipeline.state.locks import FIRST_RETRY, MAX_RETRY
from pipeline.state.sqlstore import SqlStore


def test_owner_is_job_url_in_ci():
    job = CiJob("gitlab", "alice", "https://gitlab.example/shop/-/jobs/42")

    assert default_owner(job, hostname="runner-3", pid=99) == (
        "https://gitlab.example/shop/-/jobs/42"
    )


def test_owner_is_host_and_pid_outside_ci():
    assert default_owner(CiJob(), hostname="laptop", pid=4321) == "laptop/4321"


def test_wait_zero_fails_at_once(store: SqlStore, clock: FakeClock):
    store.acquire_lock("production", "job-1", lease=60)

    with pytest.raises(LockHeld) as raised:
        wait_for_lock(store, "production", "job-2", lease=60, wait=0, clock=clock)

    assert raised.value.lock.owner == "job-1"
    assert clock.sleeps == []


def test_wait_free_lock_taken_at_once(store: SqlStore, clock: FakeClock):
    lock = wait_for_lock(store, "production", "job-2", lease=60, wait=30, clock=clock)

    assert lock.owner == "job-2"
    assert clock.sleeps == []


def test_wait_backs_off_then_gives_up(store: SqlStore, clock: FakeClock):
    store.acquire_lock("production", "job-1", lease=600)

    with pytest.raises(LockHeld):
        wait_for_lock(store, "production", "job-2", lease=60, wait=30, clock=clock)

    pauses = [FIRST_RETRY * 2 ** n for n in range(5)]  # 0.5, 1, 2, 4, 8
    for slept, pause in zip(clock.sleeps[:5], pauses, strict=True):
        assert pause <= slept <= pause * 1.1
    assert all(slept <= MAX_RETRY * 1.1 for slept in clock.sleeps)
    assert sum(clock.sleeps) == pytest.approx(30)


def test_wait_timeout_message_and_warning(store: SqlStore, clock: FakeClock,
                                          caplog: pytest.LogCaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch):
    shipline_logger = logging.getLogger("shipline")
    monkeypatch.setattr(shipline_logger, "handlers", [])
    monkeypatch.setattr(shipline_logger, "propagate", True)
    store.acquire_lock("production", "job-1", lease=600)

    with caplog.at_level(logging.WARNING, logger="shipline"), pytest.raises(LockHeld) as raised:
        wait_for_lock(store, "production", "job-2", lease=60, wait=30, clock=clock)

    assert str(raised.value).endswith(
        "unless renewed): still locked after waiting 30s: wait longer, or run 'shipline lock "
        "release production --force --reason TEXT' if that run is gone")
    assert [record.getMessage() for record in caplog.records] == [
        "environment production is locked by job-1: waiting up to 30s for the lock "
        "(--lock-wait)"]


def test_wait_takes_lock_when_lease_expires(store: SqlStore, clock: FakeClock):
    store.acquire_lock("production", "job-1", lease=45)

    lock = wait_for_lock(store, "production", "job-2", lease=60, wait=120, clock=clock)

    assert lock.owner == "job-2"
    assert 45 <= sum(clock.sleeps) <= 45 + MAX_RETRY * 1.1


def test_wait_cancelled_raises(store: SqlStore, clock: FakeClock):
    store.acquire_lock("production", "job-1", lease=600)
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(LockWaitCancelled) as raised:
        wait_for_lock(store, "production", "job-2", lease=60, wait=30, clock=clock,
                      cancel=cancel)

    assert str(raised.value) == "cancelled while waiting for the lock of 'production'"
    assert raised.value.exit_code == ExitCode.INTERRUPTED


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_heartbeat_renews_lease(open_state: Callable[[Clock], SqlStore]):
    clock = SystemClock()
    store = open_state(clock)
    lock = store.acquire_lock("production", "job-1", lease=5)
    heartbeat = Heartbeat(lambda: open_state(clock), lock, lease=5, clock=clock,
                          interval=0.02)

    heartbeat.start()
    renewed = wait_until(lambda: store.lock_status("production").heartbeat > lock.heartbeat)
    heartbeat.stop()

    assert renewed
    assert heartbeat.lock.expires > lock.expires
    assert heartbeat.lock.token == lock.token
    assert not heartbeat.lost.is_set()
    assert store.release_lock(heartbeat.lock) is True


def test_heartbeat_reports_lost_lock(open_state: Callable[[Clock], SqlStore]):
    clock = SystemClock()
    store = open_state(clock)
    lock = store.acquire_lock("production", "job-1", lease=5)
    errors: list[LockLost] = []
    heartbeat = Heartbeat(lambda: open_state(clock), lock, lease=5, clock=clock,
                          interval=0.02, on_lost=errors.append)
    heartbeat.start()

    store.force_release_lock("production", "alice", "testing")
    lost = heartbeat.lost.wait(20)
    heartbeat.stop()

    assert lost
    assert [str(error) for error in errors] == [
        "lost the lock on environment 'production' (nobody holds it now): "
        "stop changing the environment"
    ]
