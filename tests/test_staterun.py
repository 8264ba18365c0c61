"""Settings of a run's state: lease, commit, environments to lock, and a lost lock."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.clock import FakeClock, SystemClock
from pipeline.plan import Step
from pipeline.state import DEFAULT_LEASE, Deployment, DeploymentOutcome, JournalAppend, StateError
from pipeline.state.locks import lease_of
from pipeline.state.sqlite import SqliteStore
from pipeline.state.url import StateLocation
from pipeline.staterun import RunState, StateWorker, commit_from


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


def test_state_worker_batches_concurrent_journal_writes(tmp_path: Path) -> None:
    location = StateLocation("sqlite", path=tmp_path / "state.db")
    worker = StateWorker(location, SystemClock())
    deployment = worker.call(lambda store: store.start_deployment(
        pipeline="shop", environment="production", version="1.1", previous_version="1.0",
        strategy="rolling"))
    commits: list[int] = []
    batch = worker.call(lambda store: store.append_journal_many)

    def counting(appends, done=()):  # type: ignore[no-untyped-def]
        commits.append(len(appends))
        return batch(appends, done)

    worker.call(lambda store: setattr(store, "append_journal_many", counting))
    busy = threading.Event()
    blocker = threading.Thread(target=worker.call, args=(lambda store: busy.wait(10),))
    blocker.start()
    entries = []

    def append(index: int) -> None:
        entry = worker.append_journal(JournalAppend(
            deployment.id, "production", "deploy", "deploy", (f"web-{index}",), "1.1"))
        worker.complete_journal(deployment.id, entry.seq)
        entries.append(entry)

    # The worker is busy, so every append queues up for the same flush.
    threads = [threading.Thread(target=append, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    while len(worker._appends) < 20:
        time.sleep(0.001)
    busy.set()
    for thread in [blocker, *threads]:
        thread.join()
    journal = worker.call(lambda store: store.journal(deployment.id))
    worker.close()

    assert sorted(entry.seq for entry in entries) == list(range(1, 21))
    assert commits == [20]
    assert [item.done for item in journal] == [True] * 20


def test_state_worker_defers_done_marks(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    worker = StateWorker(StateLocation("sqlite", path=path), SystemClock())
    deployment = worker.call(lambda store: store.start_deployment(
        pipeline="shop", environment="production", version="1.1", previous_version="1.0",
        strategy="rolling"))

    def done_marks() -> list[bool]:
        with SqliteStore(path, FakeClock()) as store:
            return [entry.done for entry in store.journal(deployment.id)]

    def append(instance: str) -> int:
        return worker.append_journal(JournalAppend(
            deployment.id, "production", "deploy", "deploy", (instance,), "1.1")).seq

    try:
        first = append("web-1")
        worker.complete_journal(deployment.id, first)
        # Nothing else was written since: the mark waits.
        assert done_marks() == [False]

        second = append("web-2")
        worker.complete_journal(deployment.id, second)
        # The append's flush commits the mark after the append, so wait for the flush.
        worker._executor.submit(lambda: None).result()
        assert done_marks() == [True, False]

        history = worker.call(lambda store: store.journal(deployment.id))
        assert [entry.done for entry in history] == [True, True]
    finally:
        worker.close()


def test_state_worker_append_error_reaches_caller(tmp_path: Path) -> None:
    worker = StateWorker(StateLocation("sqlite", path=tmp_path / "state.db"), SystemClock())
    try:
        with pytest.raises(StateError) as caught:
            worker.append_journal(JournalAppend("nope", "s", "d", "deploy", ("web-1",), "1"))
    finally:
        worker.close()

    assert "no deployment with id nope" in str(caught.value)


def _unknown_deployment(state: RunState) -> Step:
    """Register a deploy step whose deployment the store does not contain, so that
    every record of it fails with RecordNotFound, a StateError."""
    step = Step("release/1", "deploy", "deploy", "rolling", {}, "rolling", "release")
    state.deployments[step.id] = Deployment(
        "0" * 32, "shop", "production", "2.0", "1.0", "rolling", None, None, None,
        datetime.now(timezone.utc))
    return step


@pytest.mark.parametrize(("level", "traceback"), [(logging.WARNING, False),
                                                  (logging.DEBUG, True)])
def test_run_state_store_error_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch, level: int,
                                        traceback: bool) -> None:
    worker = StateWorker(StateLocation("sqlite", path=tmp_path / "state.db"), SystemClock())
    state = RunState(worker, "shop", lease=60.0)
    step = _unknown_deployment(state)
    # A CLI test of the same session may have left its handler, whose masking filter
    # rewrites records, on the logger.
    shipline_logger = logging.getLogger("shipline")
    monkeypatch.setattr(shipline_logger, "handlers", [])
    monkeypatch.setattr(shipline_logger, "propagate", True)
    try:
        with caplog.at_level(level, logger="shipline"):
            state.finish_deployment(step, DeploymentOutcome.ROLLED_BACK)
            state.record_rollback(step.id, passed=True, message="restored")
    finally:
        state.close()

    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    missing = f"no deployment with id {'0' * 32} in {tmp_path / 'state.db'}"
    assert [record.getMessage() for record in errors] == [
        f"recording the outcome of deployment {'0' * 32} failed: {missing}",
        f"recording the rollback of deployment {'0' * 32} failed: {missing}",
    ]
    assert [record.exc_info is not None for record in errors] == [traceback, traceback]
