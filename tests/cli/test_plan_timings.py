"""``shipline plan``: minimum time to promote, maximum time to roll back, and the
``--job-timeout`` warning."""

from __future__ import annotations

import json

from pipeline.exitcodes import ExitCode

PIPELINE = """\
version: 1
name: shop
environments:
  staging:
    target:
      type: command
      instances: [s1, s2, s3, s4]
      deploy: "deploy.sh {instance} {version}"
      timeout: 10s
  production:
    target:
      type: command
      slots: {blue: [b1, b2], green: [g1, g2]}
      deploy: "deploy.sh {instance} {version}"
      remove: "remove.sh {instance} {version}"
      active_slot: "router.sh active"
      switch: "router.sh switch {slot}"
      set_weight: "router.sh weight {slot} {weight}"
      timeout: 1m
analyses:
  compare:
    provider: recorded
    judge: compare
    window: 5m
    data: {}
    metrics: [{name: latency, query: "latency:{group}"}]
stages:
  - name: staging
    environment: staging
    steps:
      - deploy: {version: "2.0", strategy: rolling, batch: 2, pause: 1m}
  - name: checks
    steps:
      - gate: {uses: http, url: "http://127.0.0.1:9/health", retries: 0, timeout: 5s}
  - name: production
    environment: production
    steps:
      - deploy:
          version: "2.0"
          strategy: canary
          steps:
            - set_weight: 10
            - pause: 10m
            - analysis: compare
            - pause: {until_approved: {file: go, timeout: 1h}}
            - set_weight: 50
            - pause: 20m
"""


def stage_data(shipline_cli, write_pipeline, *args: str) -> dict[str, dict[str, object]]:
    path = write_pipeline(PIPELINE)
    result = shipline_cli("plan", "--format", "json", *args, cwd=path.parent)
    assert result.exit_code == ExitCode.OK, result.stderr
    return {stage["name"]: stage for stage in json.loads(result.stdout)["stages"]}


def test_plan_timings_rolling(shipline_cli, write_pipeline) -> None:
    staging = stage_data(shipline_cli, write_pipeline)["staging"]

    # Two batches of two: one pause between them.
    assert staging["min_promote"] == 60
    # Four instances fit in one parallel group: a version read and a health check before
    # the deploy, 10s each at most.
    assert staging["max_rollback"] == 30
    assert staging["worst_case"] == staging["max_duration"] + 30


def test_plan_timings_canary(shipline_cli, write_pipeline) -> None:
    stages = stage_data(shipline_cli, write_pipeline)
    production = stages["production"]

    # Pauses of 10m and 20m, the 5m judgment window; the approval counts as instant.
    assert production["min_promote"] == 35 * 60
    # One group of instances (a version read, a health check and a deploy, 1m each) and
    # the traffic change (1m).
    assert production["max_rollback"] == 240
    assert production["worst_case"] == (
        stages["staging"]["max_duration"] + stages["checks"]["max_duration"]
        + production["max_duration"] + 240
    )
    assert "min_promote" not in stages["checks"]


def test_plan_timings_text(shipline_cli, write_pipeline) -> None:
    path = write_pipeline(PIPELINE)

    result = shipline_cli("plan", cwd=path.parent)

    lines = result.stdout.splitlines()
    # Two batches, each with two rounds of 10s version reads, a 10s deploy and at most
    # 70s of health checks (10s attempts retried until the 60s health timeout, then a
    # last attempt). A 1m pause separates them. Before the step, reading the running
    # versions for the history takes up to 20s.
    assert lines[lines.index("1. staging -> staging (command target)  [on_success; at most "
                             "4m40s]") + 1] == (
        "   promote: at least 1m; roll back: at most 30s; worst case with rollback: at most "
        "5m10s"
    )


def test_plan_job_timeout_warns(shipline_cli, write_pipeline) -> None:
    path = write_pipeline(PIPELINE)

    result = shipline_cli("plan", "--job-timeout", "1h", cwd=path.parent)

    assert result.exit_code == ExitCode.OK
    assert result.stderr.splitlines() == [
        "shipline: warning: stage 'production': the worst case with rollback is 2h5m15s, "
        "longer than the job timeout 1h, so the CI runner may cancel the job before the "
        "rollback finishes; raise the job timeout or shorten pauses, analyses and timeouts",
    ]


def test_plan_job_timeout_long_enough(shipline_cli, write_pipeline) -> None:
    data = stage_data(shipline_cli, write_pipeline, "--job-timeout", "3h")

    assert data["production"]["worst_case"] is not None


def test_plan_job_timeout_json_warnings(shipline_cli, write_pipeline) -> None:
    path = write_pipeline(PIPELINE)

    result = shipline_cli("plan", "--format", "json", "--job-timeout", "30m", cwd=path.parent)

    warnings = json.loads(result.stdout)["warnings"]
    assert [warning.split(":")[0] for warning in warnings] == [
        "stage 'production'"
    ]


def test_plan_job_timeout_invalid(shipline_cli, write_pipeline) -> None:
    path = write_pipeline(PIPELINE)

    result = shipline_cli("plan", "--job-timeout", "soon", cwd=path.parent)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: argument --job-timeout: 'soon' is not a valid duration: use a "
        "number of seconds or a value like 500ms, 30s, 5m, 1h (see 'shipline plan --help')\n"
    )


def test_plan_warns_about_timeout_shorter_than_pauses(shipline_cli, write_pipeline) -> None:
    path = write_pipeline(PIPELINE.replace(
        "      - deploy:\n          version: \"2.0\"\n          strategy: canary\n",
        "      - timeout: 20m\n        deploy:\n          version: \"2.0\"\n"
        "          strategy: canary\n"))

    result = shipline_cli("plan", cwd=path.parent)

    assert result.exit_code == ExitCode.OK
    assert result.stderr == (
        "shipline: warning: step 'deploy 2.0 (canary)' (line 38): its timeout 20m is shorter "
        "than the 35m its pauses and analyses take at least, so it cannot pass; raise the "
        "timeout or shorten them\n"
    )
