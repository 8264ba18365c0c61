"""Tests of approvals by file or environment flag (pipeline.approval)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.memorytarget import MemoryTarget, ScriptedClock, make_context
from pipeline.approval import ApprovalSpec, wait_for_approval
from pipeline.clock import FakeClock
from pipeline.context import Interrupted, RunContext
from pipeline.errors import ShiplineError
from pipeline.plan import freeze


def context_in(folder: Path, clock: FakeClock | None = None) -> RunContext:
    return make_context(MemoryTarget([]), clock=clock, plan_file=folder / "shipline.yml")


def test_approval_file_already_there(tmp_path: Path) -> None:
    (tmp_path / "approved").touch()
    clock = FakeClock()
    result = wait_for_approval({"file": "approved"}, context_in(tmp_path, clock))
    assert result.approved
    assert result.message == "approved: approved exists"
    assert clock.sleeps == []


def test_approval_file_appears_later(tmp_path: Path) -> None:
    def create_on_third_poll(seconds: float, number: int) -> None:
        if number == 3:
            (tmp_path / "go").touch()

    clock = ScriptedClock(create_on_third_poll)
    result = wait_for_approval({"file": "go", "interval": "5s"}, context_in(tmp_path, clock))
    assert result.approved
    assert result.waited == 15.0
    assert clock.sleeps == [5.0, 5.0, 5.0]


def test_approval_file_absolute_path(tmp_path: Path) -> None:
    flag = tmp_path / "elsewhere" / "ok"
    flag.parent.mkdir()
    flag.touch()
    result = wait_for_approval({"file": str(flag)}, context_in(tmp_path / "pipeline"))
    assert result.approved


@pytest.mark.parametrize("value", ["true", "1", "TRUE", " True "])
def test_approval_env_values_approve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("APPROVE_PROD", value)
    result = wait_for_approval({"env": "APPROVE_PROD"}, context_in(tmp_path))
    assert result.approved
    assert result.message == f"approved: APPROVE_PROD is {value.strip()!r}"


@pytest.mark.parametrize("value", ["false", "0", "yes", ""])
def test_approval_env_other_values_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("APPROVE_PROD", value)
    result = wait_for_approval({"env": "APPROVE_PROD", "timeout": "3s"}, context_in(tmp_path))
    assert not result.approved


def test_approval_timeout_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPROVE_PROD", raising=False)
    clock = FakeClock()
    spec = freeze({"file": "approvals/prod", "env": "APPROVE_PROD", "timeout": "10m",
                   "interval": "4m"})
    result = wait_for_approval(spec, context_in(tmp_path, clock))
    assert not result.approved
    assert result.message == (
        "not approved within 10m: create approvals/prod or set APPROVE_PROD=true to approve"
    )
    assert clock.sleeps == [240.0, 240.0, 120.0]
    assert result.waited == 600.0


def test_approval_default_timeout_is_one_hour(tmp_path: Path) -> None:
    clock = FakeClock()
    result = wait_for_approval({"file": "never"}, context_in(tmp_path, clock))
    assert result.waited == 3600.0
    assert len(clock.sleeps) == 3600


def test_approval_interrupted(tmp_path: Path) -> None:
    context = context_in(tmp_path)

    def interrupt(seconds: float, number: int) -> None:
        context.cancel.set()

    context.config.clock = ScriptedClock(interrupt)
    with pytest.raises(Interrupted) as raised:
        wait_for_approval({"file": "never"}, context)
    assert str(raised.value) == "interrupted while waiting for approval"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "approval: give a 'file' or an 'env' variable to wait for"),
        ({"file": "x", "timeout": "later"},
         "approval.timeout: 'later' is not a valid duration: use a number of seconds or a "
         "value like 500ms, 30s, 5m, 1h"),
        ({"file": "x", "interval": 0}, "approval.interval: must be more than 0 seconds"),
        ("file", "approval: expected a mapping with 'file' or 'env'"),
    ],
)
def test_approval_spec_invalid(spec: object, message: str) -> None:
    with pytest.raises(ShiplineError) as raised:
        ApprovalSpec.parse(spec)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_approval_spec_describe_both() -> None:
    spec = ApprovalSpec.parse({"file": "ok", "env": "GO"})
    assert spec.describe() == "create ok or set GO=true"
