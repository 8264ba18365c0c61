"""Tests of analyses used from every kind of step: canary, blue-green, rolling and gates,
run through the real Runner on the in-memory target, and their validate-time checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.memorytarget import (
    MemoryTarget,
    check_plan,
    deploy_schema_errors,
    make_plan,
    make_step,
    run_deploy,
)
from helpers.providers import ScriptedProvider
from pipeline import analysis
from pipeline.builtin import analysis_gate
from pipeline.exitcodes import ExitCode
from pipeline.report import Outcome

SLOTS = {"blue": ["blue-1", "blue-2"], "green": ["green-1", "green-2"]}
WEB = [f"web-{n}" for n in range(1, 5)]

ERRORS = {
    "provider": "scripted",
    "args": {"service": None},
    "query": "errors{service='{{ args.service }}',version='{{ args.canary_version }}'}",
    "success": "result < 0.01",
    "on_inconclusive": "abort",
}
USE = {"template": "errors", "args": {"service": "shop"}}
GOOD = {"result": 0.001}
BAD = {"result": 0.5}


def test_bluegreen_pre_and_post_promotion_analysis() -> None:
    provider = ScriptedProvider([GOOD])
    target = MemoryTarget(slots=SLOTS)

    run = run_deploy("blue-green", {"version": "2.0", "pre_promotion_analysis": USE,
                                    "post_promotion_analysis": "errors-any"},
                     target, plugins=[provider],
                     analyses={"errors": ERRORS, "errors-any": {**ERRORS, "args": {
                         "service": "all"}}})

    assert run.result.exit_code == ExitCode.OK
    assert [entry["name"] for entry in run.step.data["analyses"]] == ["errors", "errors-any"]
    assert [o["query"] for o in provider.options] == [
        "errors{service='shop',version='2.0'}", "errors{service='all',version='2.0'}",
    ]
    assert "analysis 'errors': successful: 1 measurement taken" in run.step.details


def test_bluegreen_pre_promotion_analysis_failure_keeps_traffic() -> None:
    provider = ScriptedProvider([BAD])
    target = MemoryTarget(slots=SLOTS)

    run = run_deploy("blue-green", {"version": "2.0", "pre_promotion_analysis": USE},
                     target, plugins=[provider], analyses={"errors": ERRORS})

    assert run.result.exit_code == ExitCode.FAILED
    assert run.step.message == (
        "pre-promotion analysis 'errors' failed: 1 measurement failed, more than "
        "failure_limit 0; last: success condition 'result < 0.01' is false (result=0.5)"
    )
    assert target.active == "blue"


def test_rolling_analysis_after_each_batch() -> None:
    provider = ScriptedProvider([GOOD])
    target = MemoryTarget(WEB)

    run = run_deploy("rolling", {"version": "2.0", "batch": 2, "analysis": USE}, target,
                     plugins=[provider], analyses={"errors": ERRORS})

    assert run.result.exit_code == ExitCode.OK
    assert [entry["step"] for entry in run.step.data["analyses"]] == [1, 2]


def test_rolling_analysis_failure_rolls_back() -> None:
    provider = ScriptedProvider([GOOD, BAD])
    target = MemoryTarget(WEB)

    run = run_deploy("rolling", {"version": "2.0", "batch": 2, "analysis": USE}, target,
                     plugins=[provider], analyses={"errors": ERRORS})

    assert run.result.exit_code == ExitCode.FAILED
    assert run.step.message.startswith("batch 2 of 2: analysis 'errors' failed: ")
    assert target.versions == dict.fromkeys(WEB, "1.0")


def test_analysis_gate_passes_and_fails() -> None:
    for replies, outcome in (([GOOD], Outcome.PASSED), ([BAD], Outcome.FAILED)):
        provider = ScriptedProvider(replies)
        gate = make_step("analysis", {"analysis": USE}, index=2, kind="gate")

        run = run_deploy("rolling", {"version": "2.0", "batch": 4}, MemoryTarget(WEB),
                         extra_steps=[gate], plugins=[provider, analysis_gate],
                         analyses={"errors": ERRORS})

        report = run.result.reports[1]
        assert report.outcome is outcome
        assert report.data["analyses"][0]["measurements"][0]["values"] == replies[0]
        assert provider.options[0]["query"] == "errors{service='shop',version='2.0'}"


def test_analysis_gate_schema_requires_analysis() -> None:
    from jsonschema import Draft202012Validator

    from helpers.memorytarget import make_config
    from pipeline.planning import full_schema

    schema, _ = full_schema(make_config(analysis_gate))
    validator = Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/gate"})

    assert validator.is_valid({"uses": "analysis", "analysis": USE})
    assert not validator.is_valid({"uses": "analysis"})


def test_deploy_schemas_accept_analysis_options() -> None:
    assert deploy_schema_errors({"strategy": "rolling", "version": "1", "analysis": USE}) == []
    assert deploy_schema_errors({"strategy": "blue-green", "version": "1",
                                 "pre_promotion_analysis": "errors"}) == []


def check(analyses: dict[str, Any], ref: Any) -> list[str]:
    gate = make_step("analysis", {"analysis": ref}, kind="gate")
    plan = make_plan([gate], analyses=analyses)
    return check_plan(plan, ScriptedProvider([GOOD]), analysis, analysis_gate)


def test_check_use_missing_argument() -> None:
    assert check({"errors": ERRORS}, "errors") == [
        "analysis 'errors' needs a value for argument 'service': give it in the use, for "
        "example analysis: {template: errors, args: {service: ...}}"
    ]


def test_check_use_unknown_argument_and_template() -> None:
    assert check({"errors": ERRORS}, {"template": "errors", "args": {"service": "a",
                                                                      "x": "1"}}) == [
        "analysis 'errors' has no argument 'x'; its arguments: service"
    ]
    assert check({"errors": ERRORS}, {"template": "eror"}) == [
        "analysis template 'eror' is not defined under 'analyses:' (did you mean 'errors'?)"
    ]


def test_check_template_undeclared_reference() -> None:
    template = {**ERRORS, "query": "{{ args.sevice }}"}

    assert check({"errors": template}, USE) == [
        "analysis 'errors': 'query' refers to argument 'sevice', which is not declared "
        "under 'args:'",
    ]


def test_check_use_policy_override() -> None:
    assert check({"errors": ERRORS}, {**USE, "on_failure": {"retry": 0}}) == [
        "invalid 'on_failure': retry needs a count of 1 or more, got 0"
    ]


def test_check_condition_reads_undeclared_arg() -> None:
    template = {**ERRORS, "success": "result < double(args.limit)"}

    assert check({"errors": template}, USE) == [
        "analysis 'errors': condition 'result < double(args.limit)' reads args.limit, which "
        "is not declared under 'args:'"
    ]


def test_canary_analysis_on_failure_pass_promotes() -> None:
    provider = ScriptedProvider([BAD])
    target = MemoryTarget(slots=SLOTS, weights=True, endpoint="http://127.0.0.1:9/")
    template = {**ERRORS, "on_failure": "pass"}

    run = run_deploy("canary", {"version": "2.0", "steps": [{"set_weight": 20},
                                                            {"analysis": USE}]},
                     target, plugins=[provider], analyses={"errors": template})

    entry = run.step.data["analyses"][0]
    assert run.result.exit_code == ExitCode.OK
    assert (entry["verdict"], entry["action"], entry["step"]) == ("failed", "pass", 2)
    assert target.active == "green"


def test_canary_analysis_pause_approved_by_file(tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    provider = ScriptedProvider([{"result": 0.05}])
    template = {**ERRORS, "failure": "result > 0.5",
                "on_inconclusive": {"pause": {"file": "go", "timeout": "5m"}}}
    target = MemoryTarget(slots=SLOTS, weights=True, endpoint="http://127.0.0.1:9/")

    run = run_deploy("canary", {"version": "2.0", "steps": [{"analysis": USE}]}, target,
                     plugins=[provider], analyses={"errors": template},
                     plan_file=tmp_path / "shipline.yml")

    assert run.result.exit_code == ExitCode.OK
    assert run.step.data["analyses"][0]["action_message"] == (
        "on_inconclusive is pause: approved: go exists"
    )


def test_bluegreen_post_promotion_analysis_switches_back() -> None:
    provider = ScriptedProvider([BAD])
    target = MemoryTarget(slots=SLOTS)

    run = run_deploy("blue-green", {"version": "2.0", "post_promotion_analysis": USE},
                     target, plugins=[provider], analyses={"errors": ERRORS})

    assert run.result.exit_code == ExitCode.FAILED
    assert run.step.message.startswith("post-promotion analysis 'errors' failed: ")
    assert target.active == "blue"
