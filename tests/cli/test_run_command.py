"""``shipline run`` end to end, in process, with the test step plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import stepplugin
from pipeline.exitcodes import ExitCode

PLUGIN = ("-p", "helpers.stepplugin")


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()
    stepplugin.WAITING.clear()


def run(shipline_cli, path: Path, *extra: str):
    return shipline_cli("run", *PLUGIN, str(path), *extra)


def test_run_all_pass_exit_ok(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: pass, message: fine}
              - name: second
                gate: {uses: echo, message: hello}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.OK
    assert "stage check" in result.stdout
    assert "PASSED   gate pass" in result.stdout
    assert ": fine" in result.stdout
    assert "PASSED   second" in result.stdout
    assert "exit 0 (every stage passed or was skipped by its condition)" in result.stdout


def test_run_gate_failure_before_deploy_is_blocked(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: fail, message: too many findings}
          - name: later
            steps:
              - gate: {uses: pass}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.BLOCKED
    assert "BLOCKED  gate fail" in result.stdout
    assert "stage later: skipped (needs 'check', which failed)" in result.stdout


def test_run_failed_deploy_rolls_back_exit_1(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        environments:
          prod: {target: {type: none}}
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {strategy: record, version: "2.0"}
              - gate: {uses: fail, message: smoke test failed}
              - gate: {uses: pass}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.FAILED
    changes = [event for event in stepplugin.EVENTS if event[0] in ("deploy", "rollback")]
    assert changes == [("deploy", "2.0"), ("rollback", "2.0")]
    assert "FAILED   gate fail" in result.stdout
    assert "SKIPPED  gate pass: step 'gate fail' failed" in result.stdout
    assert "PASSED   rollback: deploy 2.0 (record)" in result.stdout


def test_run_rollback_failure_exit_4(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        environments:
          prod: {target: {type: none}}
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {strategy: record, version: "2.0", fail: true, rollback_fails: true}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.ROLLBACK_FAILED
    assert "ROLLBACK FAILED rollback: deploy 2.0 (record)" in result.stdout
    assert "web-1: still on 2.0" in result.stdout


def test_run_plugin_exception_is_reported_by_name(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: raise, message: exploded}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.INTERNAL_ERROR
    assert "plugin 'helpers.stepplugin' raised ValueError: exploded" in result.stdout
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr


def test_run_when_on_failure_and_always(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        environments:
          prod: {target: {type: none}}
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {strategy: record, version: "2.0", fail: true}
          - name: cleanup
            when: on_failure
            steps:
              - gate: {uses: echo, message: cleaning}
          - name: report
            when: always
            steps:
              - gate: {uses: echo, message: reporting}
          - name: celebrate
            needs: [ship]
            steps:
              - gate: {uses: echo, message: party}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.FAILED
    assert ": cleaning" in result.stdout
    assert ": reporting" in result.stdout
    assert ": party" not in result.stdout
    assert "stage celebrate: skipped (needs 'ship', which failed)" in result.stdout


def test_run_on_failure_skipped_when_all_pass(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: build
            steps: [{gate: {uses: pass}}]
          - name: cleanup
            when: on_failure
            steps: [{gate: {uses: echo, message: cleaning}}]
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.OK
    assert ": cleaning" not in result.stdout
    assert "stage cleanup: skipped ('when: on_failure' and no stage it depends on failed)" in (
        result.stdout
    )


def test_run_step_timeout_fails_step(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: wait, seconds: 30}
                timeout: 200ms
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.BLOCKED
    assert "timed out after 200ms" in result.stdout


def test_run_notify_subscriptions_receive_events(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        notifications:
          - {uses: record, on: [started, succeeded, stage_succeeded]}
        stages:
          - name: check
            steps:
              - gate: {uses: pass}
              - notify: {uses: record, message: hello}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.OK
    events = [(n.event, n.message) for kind, n in stepplugin.EVENTS if kind == "notify"]
    assert events == [
        ("started", "shop: run started"),
        ("step", "hello"),
        ("stage_succeeded", "stage check: passed"),
        ("succeeded", "shop: run succeeded (exit 0)"),
    ]


def test_run_masks_secrets_in_output(shipline_cli, write_pipeline, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value")
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: fail, message: "token ${DEPLOY_TOKEN} rejected"}
        """)
    junit = path.parent / "report.xml"
    result = run(shipline_cli, path, "--junitxml", str(junit))
    assert "token *** rejected" in result.stdout
    assert "s3cr3t-value" not in result.stdout
    assert "s3cr3t-value" not in junit.read_text(encoding="utf-8")


def test_run_quiet_prints_only_failures(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: pass, message: fine}
              - gate: {uses: fail, message: bad}
        """)
    result = shipline_cli("run", "-q", *PLUGIN, str(path))
    assert ": fine" not in result.stdout
    assert ": bad" in result.stdout


def test_run_no_color_by_default_when_not_a_tty(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages: [{name: check, steps: [{gate: {uses: pass}}]}]
        """)
    result = run(shipline_cli, path)
    assert "\x1b[" not in result.stdout


def test_run_plugin_adds_command_line_option(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages: [{name: check, steps: [{gate: {uses: pass}}]}]
        """)
    result = run(shipline_cli, path, "--echo-prefix", ">>")
    assert result.exit_code == ExitCode.OK
    assert ("configure", ">>") in stepplugin.EVENTS


def test_run_help_lists_plugin_option(shipline_cli, tmp_path):
    result = shipline_cli("run", *PLUGIN, "--help", cwd=tmp_path)
    assert result.exit_code == ExitCode.OK
    assert "--echo-prefix" in result.stdout


def test_run_continue_on_error_still_rolls_back_the_step(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        environments:
          prod: {target: {type: none}}
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {strategy: record, version: "2.0", fail: true}
                continue_on_error: true
              - gate: {uses: echo, message: still running}
        """)
    result = run(shipline_cli, path)
    changes = [event for event in stepplugin.EVENTS if event[0] in ("deploy", "rollback")]
    assert result.exit_code == ExitCode.FAILED
    assert changes == [("deploy", "2.0"), ("rollback", "2.0")]
    assert ": still running" in result.stdout


def test_run_stage_timeout_cancels_step(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            timeout: 300ms
            steps:
              - gate: {uses: pass}
              - gate: {uses: wait, seconds: 30}
              - gate: {uses: pass}
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.BLOCKED
    assert "BLOCKED  gate wait (" in result.stdout
    assert "): stage 'check' timed out after 300ms" in result.stdout
    assert "SKIPPED  gate pass: step 'gate wait' failed" in result.stdout


def test_run_skip_reason_names_the_failed_stage(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: build
            steps: [{gate: {uses: fail}}]
          - name: report
            when: always
            steps: [{gate: {uses: pass}}]
          - name: ship
            steps: [{gate: {uses: pass}}]
        """)
    result = run(shipline_cli, path)
    assert result.exit_code == ExitCode.BLOCKED
    assert "stage ship: skipped (needs 'report', which comes after stage 'build' failed)" in (
        result.stdout
    )
