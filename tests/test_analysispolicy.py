"""Tests of the analysis policies: on_failure, on_inconclusive and on_no_data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.providers import ScriptedProvider, provider_context
from pipeline.analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    AnalysisError,
    AnalysisOutcome,
    AnalysisSettings,
    Policy,
    run_analysis_use,
)
from pipeline.analysispolicy import default_approval_file
from pipeline.approval import ApprovalSpec

GOOD = {"result": 0.001}
BAD = {"result": 0.5}
EMPTY = {"result": None}


def run_use(
    replies: list[Any], tmp_path: Path | None = None, ref: Any = "errors", **options: Any
) -> tuple[AnalysisOutcome, ScriptedProvider]:
    provider = ScriptedProvider(replies)
    template = {"provider": "scripted", "success": "result < 0.01", "interval": "10s",
                **options}
    file = (tmp_path or Path(".")) / "shipline.yml"
    context = provider_context({"errors": template}, provider, file=file)
    outcome = run_analysis_use(ref, context, stable_version="1", canary_version="2",
                               endpoint=None)
    return outcome, provider


# -- parsing -----------------------------------------------------------------------------


def test_policies_defaults() -> None:
    policies = AnalysisSettings.from_options("e", {"provider": "p", "success": "x"}).policies

    assert policies.on_failure == Policy("abort")
    assert policies.on_inconclusive == Policy(
        "pause", approval=ApprovalSpec(file=".shipline/approve-e")
    )
    assert policies.on_no_data == Policy("inconclusive")


def test_policies_parse_each_form() -> None:
    options = {
        "provider": "p", "success": "x", "on_failure": {"retry": 2},
        "on_inconclusive": {"pause": {"env": "GO", "timeout": "5m", "default": "pass"}},
        "on_no_data": "pass",
    }

    policies = AnalysisSettings.from_options("e", options).policies

    assert policies.on_failure == Policy("retry", retries=2)
    assert policies.on_inconclusive == Policy(
        "pause", approval=ApprovalSpec(env="GO", timeout=300.0), default="pass"
    )
    assert policies.on_no_data == Policy("pass")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("on_failure", "explode", "invalid 'on_failure': expected abort, pass, pause, "
         "{retry: N} or {pause: {...}}, got 'explode'"),
        ("on_failure", "inconclusive", "invalid 'on_failure': expected abort, pass, pause, "
         "{retry: N} or {pause: {...}}, got 'inconclusive'"),
        ("on_no_data", "explode", "invalid 'on_no_data': expected abort, pass, pause, "
         "inconclusive, {retry: N} or {pause: {...}}, got 'explode'"),
        ("on_failure", {"retry": 0}, "invalid 'on_failure': retry needs a count of 1 or "
         "more, got 0"),
        ("on_inconclusive", {"pause": {"file": "x", "default": "retry"}},
         "invalid 'on_inconclusive': the default action of a pause must be abort or pass, "
         "got 'retry'"),
        ("on_inconclusive", {"pause": {"timeout": "soon"}},
         "on_inconclusive.pause.timeout: 'soon' is not a valid duration: use a number of "
         "seconds or a value like 500ms, 30s, 5m, 1h"),
        ("on_inconclusive", {"pause": "x"}, "invalid 'on_inconclusive': pause needs a "
         "mapping of approval options such as 'file', 'env' or 'timeout', got 'x'"),
    ],
)
def test_policy_errors(key: str, value: Any, message: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        AnalysisSettings.from_options("e", {"provider": "p", "success": "x", key: value})

    assert str(caught.value) == message
    assert caught.value.key == key


def test_policy_pause_timeout_alone_waits_for_default_file() -> None:
    options = {"provider": "p", "success": "x",
               "on_inconclusive": {"pause": {"timeout": "2s", "default": "pass"}}}

    policy = AnalysisSettings.from_options("e", options).policies.on_inconclusive

    assert policy == Policy(
        "pause", approval=ApprovalSpec(file=".shipline/approve-e", timeout=2.0),
        default="pass",
    )


def test_default_approval_file_replaces_odd_characters() -> None:
    assert default_approval_file("inline probe/x") == ".shipline/approve-inline-probe-x"


# -- on_failure and on_inconclusive ------------------------------------------------------


def test_successful_analysis_continues() -> None:
    outcome, _ = run_use([GOOD])

    assert outcome.passed
    assert [run.action for run in outcome.runs] == ["continue"]


def test_on_failure_abort_is_default() -> None:
    outcome, _ = run_use([BAD])

    assert not outcome.passed
    assert outcome.message == (
        "failed: 1 measurement failed, more than failure_limit 0; last: success condition "
        "'result < 0.01' is false (result=0.5)"
    )
    assert outcome.runs[0].action == "abort"
    assert outcome.runs[0].action_message == "on_failure is abort"


def test_on_failure_pass_goes_on() -> None:
    outcome, _ = run_use([BAD], on_failure="pass")

    assert outcome.passed
    assert outcome.message.endswith("; on_failure is pass: going on")
    assert outcome.runs[0].verdict == FAILED


def test_on_failure_retry_runs_again_and_passes() -> None:
    outcome, provider = run_use([BAD, BAD, GOOD], on_failure={"retry": 2})

    assert outcome.passed
    assert [run.verdict for run in outcome.runs] == [FAILED, FAILED, SUCCESSFUL]
    assert [run.action_message for run in outcome.runs] == [
        "on_failure is retry: 2: running again (1 of 2)",
        "on_failure is retry: 2: running again (2 of 2)",
        "",
    ]
    assert len(provider.requests) == 3


def test_on_failure_retry_used_up_aborts() -> None:
    outcome, _ = run_use([BAD], on_failure={"retry": 1})

    assert not outcome.passed
    assert len(outcome.runs) == 2
    assert outcome.message.endswith("; on_failure is retry: 1: still failed after the retries")


def test_on_inconclusive_pause_approved_by_file(tmp_path: Path) -> None:
    approvals = tmp_path / ".shipline"
    approvals.mkdir()
    (approvals / "approve-errors").touch()

    outcome, _ = run_use([{"result": 0.02}], tmp_path, failure="result > 0.1")

    assert outcome.passed
    assert outcome.runs[0].verdict == INCONCLUSIVE
    assert outcome.message.endswith(
        "; on_inconclusive is pause: approved: .shipline/approve-errors exists"
    )


def test_on_inconclusive_pause_times_out_to_default_abort(tmp_path: Path) -> None:
    outcome, _ = run_use([{"result": 0.02}], tmp_path, failure="result > 0.1",
                         on_inconclusive={"pause": {"file": "go", "timeout": "2m"}})

    assert not outcome.passed
    assert outcome.message.endswith(
        "; on_inconclusive is pause: not approved within 2m: create go to approve; "
        "default action abort"
    )
    assert outcome.runs[0].action == "abort"


def test_on_inconclusive_pause_times_out_to_default_pass(tmp_path: Path) -> None:
    pause = {"pause": {"env": "SHIPLINE_TEST_UNSET_FLAG", "timeout": "1m", "default": "pass"}}
    outcome, _ = run_use([{"result": 0.02}], tmp_path, failure="result > 0.1",
                         on_inconclusive=pause)

    assert outcome.passed
    assert outcome.runs[0].action == "pass"


def test_on_failure_pause_approved_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPLINE_TEST_APPROVE", "true")

    outcome, _ = run_use([BAD], on_failure={"pause": {"env": "SHIPLINE_TEST_APPROVE"}})

    assert outcome.passed
    assert outcome.message.endswith(
        "; on_failure is pause: approved: SHIPLINE_TEST_APPROVE is 'true'"
    )


def test_error_always_aborts() -> None:
    outcome, _ = run_use([RuntimeError("down")], on_failure="pass", consecutive_error_limit=0)

    assert not outcome.passed
    assert outcome.runs[0].verdict == ERROR
    assert outcome.runs[0].action_message == "an analysis with an error always aborts"


def test_use_overrides_template_policy() -> None:
    outcome, _ = run_use([BAD], ref={"template": "errors", "on_failure": "pass"})

    assert outcome.passed


# -- on_no_data --------------------------------------------------------------------------


def test_on_no_data_inconclusive_is_default() -> None:
    outcome, _ = run_use([EMPTY], on_inconclusive="abort")

    measurement = outcome.runs[0].measurements[0]
    assert outcome.runs[0].verdict == INCONCLUSIVE
    assert measurement.no_data
    assert measurement.message == "no data for success condition 'result < 0.01' (result=no data)"


def test_on_no_data_pass_counts_successful() -> None:
    outcome, _ = run_use([EMPTY], on_no_data="pass")

    assert outcome.passed
    assert outcome.runs[0].measurements[0].message == (
        "no data for success condition 'result < 0.01' (result=no data); counted as "
        "successful (on_no_data: pass)"
    )


def test_on_no_data_nan_counts_as_no_data() -> None:
    outcome, _ = run_use([{"result": float("nan")}], on_no_data="pass")

    assert outcome.passed
    assert outcome.runs[0].measurements[0].values == {"result": None}


def test_on_no_data_retry_measures_again() -> None:
    outcome, provider = run_use([EMPTY, EMPTY, GOOD], on_no_data={"retry": 3})

    measurements = outcome.runs[0].measurements
    assert outcome.passed
    assert [m.counted for m in measurements] == [False, False, True]
    assert measurements[1].message.endswith("; measuring again (on_no_data retry 2 of 3)")
    assert len(provider.requests) == 3


def test_on_no_data_retry_used_up_is_inconclusive() -> None:
    outcome, _ = run_use([EMPTY], on_no_data={"retry": 1}, on_inconclusive="abort")

    measurements = outcome.runs[0].measurements
    assert not outcome.passed
    assert outcome.runs[0].verdict == INCONCLUSIVE
    assert len(measurements) == 2
    assert measurements[1].message.endswith(
        "; still no data after 1 retries: counted as inconclusive"
    )


def test_on_no_data_abort_ends_at_once() -> None:
    outcome, provider = run_use([EMPTY, GOOD], on_no_data="abort", count=3,
                                on_failure="pass")

    assert not outcome.passed
    assert outcome.runs[0].verdict == FAILED
    assert outcome.runs[0].action_message == "on_no_data aborted the analysis"
    assert outcome.message == (
        "failed: no data, and on_no_data (abort) aborts: no data for success condition "
        "'result < 0.01' (result=no data)"
    )
    assert len(provider.requests) == 1


def test_on_no_data_pause_not_approved_aborts(tmp_path: Path) -> None:
    outcome, _ = run_use([EMPTY], tmp_path,
                         on_no_data={"pause": {"file": "go", "timeout": "30s"}})

    assert not outcome.passed
    assert outcome.runs[0].measurements[0].message.endswith(
        "; not approved within 30s: create go to approve"
    )
    assert outcome.runs[0].message.startswith("no data, and on_no_data (pause) aborts: ")


def test_on_no_data_pause_approved_counts_successful(tmp_path: Path) -> None:
    (tmp_path / "go").touch()

    outcome, _ = run_use([EMPTY], tmp_path, on_no_data={"pause": {"file": "go"}})

    assert outcome.passed
    assert outcome.runs[0].measurements[0].verdict == SUCCESSFUL


def test_outcome_details_list_measurements_and_policy() -> None:
    outcome, _ = run_use([BAD], on_failure="pass")

    assert outcome.details() == (
        "analysis 'errors': failed: 1 measurement failed, more than failure_limit 0; last: "
        "success condition 'result < 0.01' is false (result=0.5)\n"
        "1. 2027-01-15T08:00:00Z failed: success condition 'result < 0.01' is false "
        "(result=0.5)\n"
        "policy: on_failure is pass: going on"
    )


def test_pause_file_named_with_arguments(tmp_path: Path) -> None:
    (tmp_path / "approve-2").touch()
    pause = {"pause": {"file": "approve-{{ args.canary_version }}", "timeout": "1m"}}

    outcome, _ = run_use([BAD], tmp_path, on_failure=pause)

    assert outcome.passed
    assert outcome.message.endswith("; on_failure is pause: approved: approve-2 exists")
