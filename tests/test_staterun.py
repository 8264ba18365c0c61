"""Settings of a run's state: lease, commit, environments to lock, and a lost lock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.clock import FakeClock, SystemClock
from pipeline.state import DEFAULT_LEASE, StateError
from pipeline.state.sqlite import SqliteStore
from pipeline.state.url import StateLocation
from pipeline.staterun import RunState, StateWorker, commit_from, lease_of


def test_lease_of_default_and_duration() -> None:
    assert lease_of({}) == DEFAULT_LEASE
    assert lease_of({"lease": "2m"}) == 120.0
    assert lease_of({"lease": 5}) == 5.0


def test_lease_of_too_short() -> None:
    with pytest.raises(StateError) as raised:
        lease_of({"lease": "500ms"})

    assert str(raised.value) == "state.lease: '500ms' is too short: use at least 1s"


def test_commit_from_github_then_gitlab() -> None:
    assert commit_from({"GITHUB_SHA": "aaa", "CI_COMMIT_SHA": "bbb"}) == "aaa"
    assert commit_from({"CI_COMMIT_SHA": " bbb "}) == "bbb"
    assert commit_from({}) is None


def test_run_state_lost_lock_calls_back(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    worker = StateWorker(StateLocation("sqlite", path=path), SystemClock())
    lost = threading.Event()
    reasons: list[str] = []

    def on_lost(reason: str) -> None:
        reasons.append(reason)
        lost.set()

    state = RunState(worker, "shop", lease=1.0, on_lock_lost=on_lost)
    try:
        state.lock(["production"], wait=0)
        with SqliteStore(path, FakeClock()) as other:
            other.force_release_lock("production", "ops", "test")

        assert lost.wait(20), "the heartbeat did not report the lost lock"
    finally:
        state.close()

    assert reasons[0].startswith("lost the lock on environment 'production' (nobody holds it")
    with SqliteStore(path, FakeClock()) as store:
        assert store.lock_status("production") is None
