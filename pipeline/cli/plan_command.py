"""``shipline plan [FILE]``: print the compiled plan without running it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline import policy
from pipeline.cancel import CANCEL_GRACE
from pipeline.config import Config
from pipeline.durations import duration_option, format_duration
from pipeline.exitcodes import ExitCode
from pipeline.plan import Plan, Stage, Step, thaw
from pipeline.planning import load_plan, resolve_pipeline_path
from pipeline.plantimes import (
    StageTimes,
    deploy_stage_times,
    job_timeout_warnings,
    short_timeout_warnings,
)
from pipeline.policy import add_policy_argument


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan", parents=parents, help="print the compiled plan",
        description="Print stages in the order they run, each step with the plugin that "
        "runs it, and the longest time each stage can take.",
    )
    parser.add_argument("file", nargs="?", help="pipeline file (default: shipline.yml)")
    add_policy_argument(parser)
    parser.add_argument("--format", choices=("text", "json", "policy"), default="text",
                        help="output format (default: text); 'policy' prints the JSON view "
                        "of the plan that policy rules read as 'plan'")
    parser.add_argument("--job-timeout", metavar="DURATION", type=duration_option,
                        help="the CI job's time limit (30m, 1h): warn about deploy stages "
                        "whose worst case with rollback is longer")
    return parser


def step_max_duration(step: Step, plan: Plan, config: Config) -> float | None:
    """Return the longest the step can take in seconds, or ``None`` if unbounded.

    A step stopped by its ``timeout`` may take up to the runner's cancel grace more to
    stop, for example while a command waits between SIGTERM and SIGKILL.
    """
    estimate: float | None = config.hook.shipline_estimate_duration(step=step, plan=plan)
    if estimate is not None and step.kind == "deploy":
        estimate += _version_reads(step, plan)
    if step.timeout is None:
        return estimate
    if estimate is not None and estimate <= step.timeout:
        return estimate
    return step.timeout + CANCEL_GRACE


def _version_reads(step: Step, plan: Plan) -> float:
    """Return the longest reading the active slot and the serving instances' versions
    can take before a deploy step starts, for the deployment history; 0 when the
    target's limit is unknown."""
    from pipeline.rolloutoptions import (
        call_time_limit,
        environment_instance_count,
        parallel_waves,
    )

    call = call_time_limit(plan, step)
    instances = environment_instance_count(plan, step)
    if call is None or instances is None:
        return 0.0
    return (1 + parallel_waves(instances)) * call


def stage_max_duration(stage: Stage, steps: list[float | None]) -> float | None:
    """Return the longest the stage's steps can take in seconds, or ``None`` if unbounded.

    As for a step, a stage stopped by its ``timeout`` may take the runner's cancel grace
    more to stop.
    """
    limit = None if stage.timeout is None else stage.timeout + CANCEL_GRACE
    if any(value is None for value in steps):
        return limit
    total = sum(value for value in steps if value is not None)
    return total if limit is None else min(total, limit)


def plan_data(plan: Plan, config: Config) -> dict[str, Any]:
    """Return the plan as JSON-compatible data with secrets masked."""
    stages = []
    for stage in plan.stages:
        steps = []
        durations = []
        for step in stage.steps:
            duration = step_max_duration(step, plan, config)
            durations.append(duration)
            steps.append({
                "id": step.id,
                "name": step.name,
                "kind": step.kind,
                "type": step.type,
                "plugin": step.plugin,
                "line": step.mark.line if step.mark else None,
                "timeout": step.timeout,
                "max_duration": duration,
                "options": config.masker.mask_data(thaw(step.options)),
            })
        environment = plan.environments.get(stage.environment) if stage.environment else None
        stages.append({
            "name": stage.name,
            "needs": list(stage.needs),
            "when": stage.when.value,
            "environment": stage.environment,
            "target": environment.target.get("type") if environment else None,
            "max_duration": stage_max_duration(stage, durations),
            "steps": steps,
        })
    _add_times(plan, config, stages)
    # Step names and versions can contain interpolated secrets too, not only options.
    data = {"pipeline": plan.name, "file": str(plan.file), "stages": stages}
    masked: dict[str, Any] = config.masker.mask_data(data)
    return masked


def _add_times(plan: Plan, config: Config, stages: list[dict[str, Any]]) -> None:
    """Add ``min_promote``, ``max_rollback`` and ``worst_case`` to deploy stages."""
    durations = [stage["max_duration"] for stage in stages]
    by_name = {stage["name"]: stage for stage in stages}
    for times in deploy_stage_times(plan, config, durations):
        by_name[times.stage].update(min_promote=times.min_promote,
                                    max_rollback=times.max_rollback,
                                    worst_case=times.worst_case)


def _format_limit(seconds: float | None) -> str:
    return "unbounded" if seconds is None else f"at most {format_duration(seconds)}"


def _format_least(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"at least {format_duration(seconds)}"


def _format_most(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"at most {format_duration(seconds)}"


def print_text(data: dict[str, Any], config: Config) -> None:
    out = config.stdout
    print(f"pipeline {data['pipeline']} ({data['file']}): {len(data['stages'])} stage(s)",
          file=out)
    for number, stage in enumerate(data["stages"], start=1):
        where = ""
        if stage["environment"]:
            where = f" -> {stage['environment']} ({stage['target']} target)"
        needs = f", needs {', '.join(stage['needs'])}" if stage["needs"] else ""
        print(f"\n{number}. {stage['name']}{where}  [{stage['when']}{needs}; "
              f"{_format_limit(stage['max_duration'])}]", file=out)
        if "min_promote" in stage:
            print(f"   promote: {_format_least(stage['min_promote'])}; roll back: "
                  f"{_format_most(stage['max_rollback'])}; worst case with rollback: "
                  f"{_format_most(stage['worst_case'])}", file=out)
        for step in stage["steps"]:
            kind = "strategy" if step["kind"] == "deploy" else "uses"
            print(f"   - {step['name']}: {step['kind']}, {kind} {step['type']}, "
                  f"plugin {step['plugin']}, {_format_limit(step['max_duration'])} "
                  f"(line {step['line']})", file=out)


def main(config: Config) -> ExitCode:
    path = resolve_pipeline_path(config.options.file, config.invocation_dir)
    loaded = load_plan(path, config)
    if config.options.format == "policy":
        # Printed without checking the policy, because this output is what a rule
        # author reads to see why a rule fails.
        from pipeline.policyview import plan_view

        view = config.masker.mask_data(plan_view(loaded.plan))
        print(json.dumps(view, indent=2), file=config.stdout)
        return ExitCode.OK

    policy.enforce(loaded.plan, config.option("policy", []), ExitCode.BLOCKED)
    data = plan_data(loaded.plan, config)
    warnings = [*short_timeout_warnings(loaded.plan, config),
                *_warnings(data, config.options.job_timeout)]
    if config.options.format == "json":
        if config.options.job_timeout is not None or warnings:
            data["warnings"] = warnings
        print(json.dumps(data, indent=2), file=config.stdout)
    else:
        print_text(data, config)
    for warning in warnings:
        print(f"shipline: warning: {warning}", file=config.stderr)
    return ExitCode.OK


def _warnings(data: dict[str, Any], job_timeout: float | None) -> list[str]:
    if job_timeout is None:
        return []
    times = [
        StageTimes(stage["name"], stage["min_promote"], stage["max_rollback"],
                   stage["worst_case"])
        for stage in data["stages"] if "min_promote" in stage
    ]
    return job_timeout_warnings(times, job_timeout)
