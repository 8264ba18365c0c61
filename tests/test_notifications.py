"""Run events as notifications: which events a run sends, with what, and how the end of
the run waits for them. Runs go through the real CLI, runner and queue, with the
``record`` notifier of the test step plugin, a ``shipline_plugins.py`` written per test,
and webhook endpoints on 127.0.0.1."""

from __future__ import annotations

import argparse
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import stepplugin
from helpers.memorytarget import MemoryTarget, make_context
from helpers.recorder import HANG, Recorder, Reply, refused_url
from pipeline.approval import wait_for_approval
from pipeline.clock import FakeClock
from pipeline.config import Config
from pipeline.exitcodes import ExitCode
from pipeline.notification import Notification
from pipeline.notifications import (
    DEFAULT_NOTIFY_TIMEOUT,
    NotificationCenter,
    failed_analysis,
    notify_timeout,
)
from pipeline.planning import load_plan
from pipeline.plugins import PluginRegistry
from pipeline.runner import Runner, RunResult

PLUGINS = ("-p", "helpers.stepplugin", "-p", "pipeline.builtin.webhook",
           "-p", "pipeline.notifications")
GITLAB = {"CI_JOB_URL": "https://gitlab.example.com/acme/shop/-/jobs/42",
          "GITLAB_USER_LOGIN": "jdoe"}
ALL_EVENTS = ("started, stage_succeeded, stage_failed, blocked, analysis_failed, rolled_back, "
              "rollback_failed, succeeded, failed, paused")

#: A project-local plugin: a deploy strategy that fails with a failed analysis in its
#: report data, one that announces a pause, a notifier that raises, a notifier type
#: without an implementation, and a recorder of shipline_notification_sent calls.
LOCAL_PLUGIN = '''
import pipeline
from helpers import stepplugin
from pipeline import Outcome, StepReport, StepSchema

OPTIONS = {"properties": {"message": {"type": "string", "title": "Message",
                                      "description": "Text."}}}


@pipeline.hookimpl
def shipline_step_schemas():
    return [StepSchema("deploy", "analysed", {"properties": {}}),
            StepSchema("deploy", "approved", {"properties": {}}),
            StepSchema("notify", "explode", OPTIONS),
            StepSchema("notify", "ghost", OPTIONS)]


@pipeline.hookimpl
def shipline_run_deploy(step, context):
    if step.type == "analysed":
        data = {"analyses": [
            {"step": 1, "name": "latency", "verdict": "successful", "message": "p99 80ms"},
            {"step": 3, "name": "error-rate", "verdict": "failed",
             "message": "error rate 0.2 above 0.01"},
        ]}
        return StepReport(step.id, step.name, step.kind, Outcome.FAILED,
                          message="analysis failed", data=data)
    if step.type == "approved":
        context.notify_paused("waiting for the release manager")
        return StepReport(step.id, step.name, step.kind, Outcome.PASSED, message="approved")
    return None


@pipeline.hookimpl
def shipline_notify(notification):
    if notification.uses == "explode":
        raise ValueError("notifier bug")
    return None


@pipeline.hookimpl
def shipline_notification_sent(notification, delivery):
    stepplugin.EVENTS.append(("sent", (notification.event, delivery)))
'''


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()


@pytest.fixture
def project(tmp_path: Path):
    """Write the local plugin and return a function that writes the pipeline file."""
    (tmp_path / "shipline_plugins.py").write_text(LOCAL_PLUGIN, encoding="utf-8")

    def write(text: str) -> Path:
        path = tmp_path / "shipline.yml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def run(shipline_cli, path: Path, *extra: str, env: dict[str, str] | None = None):
    return shipline_cli("run", *PLUGINS, str(path), *extra, env=env)


def notifications() -> list[Notification]:
    return [item for kind, item in stepplugin.EVENTS if kind == "notify"]


def sent() -> list[tuple[str, Any]]:
    return [item for kind, item in stepplugin.EVENTS if kind == "sent"]


def record_all(extra: str = "") -> str:
    return f"notifications:\n  - {{uses: record, on: [{ALL_EVENTS}]{extra}}}\n"


def deploy_pipeline(deploy: str, subscriptions: str | None = None,
                    settings: str = "") -> str:
    return (f"version: 1\nname: shop\n{settings}"
            f"{record_all() if subscriptions is None else subscriptions}"
            "environments:\n  prod: {target: {type: none}}\n"
            "stages:\n  - name: ship\n    environment: prod\n    steps:\n"
            f"      - deploy: {deploy}\n")


# -- events of a run -----------------------------------------------------------------------


def test_run_success_events(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0'}"))
    result = run(shipline_cli, path, env=GITLAB)

    assert result.exit_code == ExitCode.OK
    sent_events = [(n.event, n.message, n.outcome) for n in notifications()]
    assert sent_events == [
        ("started", "shop: run started", None),
        ("stage_succeeded", "stage ship: passed", "passed"),
        ("succeeded", "shop: run succeeded (exit 0)", "succeeded"),
    ]
    last = notifications()[-1]
    assert last.pipeline == "shop"
    assert last.stage is None
    assert last.environment is None
    assert last.version == "2.0"
    assert last.actor == "jdoe"
    assert last.job_url == "https://gitlab.example.com/acme/shop/-/jobs/42"
    assert last.facts == {"exit_code": 0}
    assert last.duration >= 0
    assert last.time > 0
    assert len({n.idempotency_key for n in notifications()}) == 3


def test_run_failed_deploy_events(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0', fail: true}"))
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.FAILED
    assert [n.event for n in notifications()] == ["started", "rolled_back", "stage_failed",
                                                  "failed"]
    rolled_back = notifications()[1]
    assert rolled_back.message == "deploy 2.0 (record): restored the version before 2.0"
    assert rolled_back.outcome == "passed"
    assert rolled_back.facts == {"step": "deploy 2.0 (record)"}
    assert notifications()[-1].message == "shop: run failed (exit 1)"


def test_run_rollback_failed_event(shipline_cli, project) -> None:
    path = project(deploy_pipeline(
        "{strategy: record, version: '2.0', fail: true, rollback_fails: true}"))
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.ROLLBACK_FAILED
    assert [n.event for n in notifications()] == ["started", "rollback_failed",
                                                  "stage_failed", "failed"]
    assert notifications()[1].message == "deploy 2.0 (record): could not restore"
    assert notifications()[-1].facts == {"exit_code": 4}


def test_run_blocked_event(shipline_cli, project) -> None:
    path = project("version: 1\nname: shop\n" + record_all()
                   + "stages:\n  - name: check\n    steps:\n"
                   "      - gate: {uses: fail, message: too many findings}\n")
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.BLOCKED
    assert [n.event for n in notifications()] == ["started", "stage_failed", "blocked"]
    assert notifications()[-1].message == "shop: run blocked (exit 3)"


def test_run_analysis_failed_event(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: analysed, version: '2.0'}"))
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.FAILED
    assert [n.event for n in notifications()] == ["started", "analysis_failed",
                                                  "stage_failed", "failed"]
    analysis = notifications()[1]
    assert analysis.message == ("deploy 2.0 (analysed): analysis 'error-rate' failed: "
                                "error rate 0.2 above 0.01")
    assert analysis.outcome == "failed"
    assert analysis.facts == {"step": "deploy 2.0 (analysed)", "analysis": "error-rate",
                              "verdict": "failed"}


def test_run_paused_event(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: approved, version: '2.0'}"))
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.OK
    assert [n.event for n in notifications()] == ["started", "paused", "stage_succeeded",
                                                  "succeeded"]
    paused = notifications()[1]
    assert paused.message == "waiting for the release manager"
    assert paused.stage == "ship"


def test_run_only_subscribed_events(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0', fail: true}",
                                   "notifications:\n  - {uses: record, on: [failed]}\n"))
    run(shipline_cli, path)

    assert [n.event for n in notifications()] == ["failed"]


def test_run_masks_message(shipline_cli, project, monkeypatch) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-9d8c7b6a5")
    path = project(deploy_pipeline("{strategy: record, version: '2.0'}",
                                   "notifications: []\n", "secrets: [DEPLOY_TOKEN]\n")
                   .replace("      - deploy:", "      - notify: {uses: record, message: "
                            "\"token ${DEPLOY_TOKEN}\"}\n      - deploy:"))
    run(shipline_cli, path)

    assert notifications()[0].message == "token ***"


# -- delivery failures ---------------------------------------------------------------------


def test_run_notifier_exception_is_warning(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0'}",
                                   "notifications:\n  - {uses: explode, on: [succeeded]}\n"))
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.OK
    plugin = path.parent.resolve() / "shipline_plugins.py"
    assert (f"warning: notification 'succeeded' via explode failed: plugin "
            f"'{plugin}' raised ValueError: notifier bug\n") in result.stdout


def test_run_notifier_without_implementation(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0'}",
                                   "notifications:\n  - {uses: ghost, on: [started]}\n"))
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.OK
    assert ("warning: notification 'started' via ghost failed: no plugin sends "
            "notifications of type 'ghost'\n") in result.stdout


def test_run_notification_sent_hook(shipline_cli, project) -> None:
    path = project(deploy_pipeline(
        "{strategy: record, version: '2.0'}",
        "notifications:\n  - {uses: record, on: [started]}\n"
        "  - {uses: ghost, on: [succeeded]}\n"))
    run(shipline_cli, path)

    calls = [(event, delivery.uses, delivery.ok) for event, delivery in sent()]
    assert sorted(calls) == [("started", "record", True), ("succeeded", "ghost", False)]


def test_run_required_step_times_out(shipline_cli, project) -> None:
    with Recorder() as recorder:
        recorder.route("/", HANG)
        path = project(f"""\
            version: 1
            name: shop
            notify_timeout: 200ms
            stages:
              - name: tell
                steps:
                  - notify: {{uses: webhook, url: "{recorder.url('/')}", secret: s,
                              required: true}}
            """)
        result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.FAILED
    assert "): not delivered within 200ms (notify_timeout)\n" in result.stdout
    # The step waited its share; the end of the run does not wait for it again.
    assert "when the run stopped waiting" not in result.stdout


def test_run_required_step_bounded_by_step_timeout(shipline_cli, project) -> None:
    with Recorder() as recorder:
        recorder.route("/", HANG)
        path = project(f"""\
            version: 1
            name: shop
            stages:
              - name: tell
                steps:
                  - timeout: 200ms
                    notify: {{uses: webhook, url: "{recorder.url('/')}", secret: s,
                             required: true}}
            """)
        result = run(shipline_cli, path, "--notify-timeout", "1s")

    assert result.exit_code == ExitCode.FAILED
    assert "): timed out after 200ms\n" in result.stdout


# -- the end of the run ----------------------------------------------------------------------


def load_and_run(path: Path, notify_timeout_option: float | None = None) -> RunResult:
    """Run ``path`` through the runner directly, to see the RunResult."""
    registry = PluginRegistry()
    registry.load_builtins()
    registry.load_modules(["helpers.stepplugin", "pipeline.builtin.webhook",
                           "pipeline.notifications"], origin="test")
    registry.check_pending()
    options = argparse.Namespace(command="run", notify_timeout=notify_timeout_option,
                                 debug=False, verbose=0, quiet=0, plugins=[])
    config = Config(options=options, registry=registry, invocation_dir=path.parent)
    loaded = load_plan(path, config)
    return Runner(loaded.plan, config).run()


def endpoints_pipeline(urls: list[str], retries: int | None = None) -> str:
    extra = "" if retries is None else f", retries: {retries}"
    subscriptions = "".join(
        f'  - {{uses: webhook, url: "{url}", secret: s, on: [{ALL_EVENTS}]{extra}}}\n'
        for url in urls)
    return deploy_pipeline("{strategy: record, version: '2.0', fail: true}",
                           "notifications:\n" + subscriptions, "notify_timeout: 1s\n")


def test_run_with_endpoints_down_finishes_like_healthy(project) -> None:
    """Refused, hanging and failing endpoints change neither the rollback nor the exit
    code, and the run stops waiting for them after notify_timeout."""
    with Recorder() as healthy:
        path = project(endpoints_pipeline([healthy.url("/a"), healthy.url("/b")]))
        healthy_result = load_and_run(path)
        assert len(healthy.requests) == 8
    healthy_changes = [event for event in stepplugin.EVENTS if event[0] != "sent"]
    stepplugin.EVENTS.clear()

    with Recorder() as hanging, Recorder() as failing:
        hanging.route("/", HANG)
        failing.route("/", Reply(500, "down"))
        path = project(endpoints_pipeline([refused_url("/"), hanging.url("/"),
                                           failing.url("/")]))
        down_result = load_and_run(path)
        hanging.wait_for(1)
    down_changes = [event for event in stepplugin.EVENTS if event[0] != "sent"]

    assert healthy_result.exit_code == ExitCode.FAILED
    assert down_result.exit_code == healthy_result.exit_code
    assert down_changes == healthy_changes == [("deploy", "2.0"), ("rollback", "2.0")]
    assert healthy_result.warnings == []
    # Four events for each of three endpoints, none delivered. The hanging endpoint got
    # the first event and held it until the run stopped waiting.
    assert len(down_result.warnings) == 12
    assert ("notification 'started' via webhook failed: not delivered within 1s, when the "
            "run stopped waiting") in down_result.warnings
    assert all(" via webhook failed: " in warning for warning in down_result.warnings)


def test_run_warnings_in_result(project) -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(404, "gone"))
        path = project(endpoints_pipeline([recorder.url("/")], retries=0))
        result = load_and_run(path)

    assert result.exit_code == ExitCode.FAILED
    assert result.warnings == [
        f"notification '{event}' via webhook failed: POST http://127.0.0.1:{recorder.port} "
        "failed: HTTP 404: gone"
        for event in ("started", "rolled_back", "stage_failed", "failed")
    ]


def test_notify_timeout_option_overrides_file(project) -> None:
    with Recorder() as recorder:
        recorder.route("/", HANG)
        path = project(endpoints_pipeline([recorder.url("/")]))
        result = load_and_run(path, notify_timeout_option=0.1)

    assert ("notification 'started' via webhook failed: not delivered within 100ms, when the "
            "run stopped waiting") in result.warnings


def test_notify_timeout_option_invalid(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0'}"))
    result = run(shipline_cli, path, "--notify-timeout", "soon")

    assert result.exit_code == ExitCode.INVALID
    assert ("argument --notify-timeout: 'soon' is not a valid duration: use a number of "
            "seconds or a value like 500ms, 30s, 5m, 1h") in result.stderr


@pytest.mark.parametrize("value", ["5", "0", "1.5"])
def test_notify_timeout_option_takes_bare_seconds(shipline_cli, project, value: str) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0'}"))
    result = run(shipline_cli, path, "--notify-timeout", value)

    assert result.exit_code == ExitCode.OK, result.stderr


def test_notify_timeout_invalid_in_file(shipline_cli, project) -> None:
    path = project(deploy_pipeline("{strategy: record, version: '2.0'}",
                                   settings="notify_timeout: soon\n"))
    result = run(shipline_cli, path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (f"{path}:3:17: notify_timeout: 'soon' is not a valid duration: "
                             "use a number of seconds or a value like 500ms, 30s, 5m, 1h\n")


def config_with(option: float | None) -> Config:
    return Config(options=argparse.Namespace(notify_timeout=option), registry=PluginRegistry())


def plan_with(timeout: float | None) -> Any:
    return argparse.Namespace(notify_timeout=timeout)


@pytest.mark.parametrize(("option", "in_file", "expected"), [
    (None, None, DEFAULT_NOTIFY_TIMEOUT),
    (None, 5.0, 5.0),
    (2.0, 5.0, 2.0),
    (0.0, None, 0.0),
])
def test_notify_timeout_precedence(option, in_file, expected) -> None:
    assert notify_timeout(plan_with(in_file), config_with(option)) == expected


# -- pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [
    ({}, None),
    ({"analyses": [{"name": "a", "verdict": "successful"}]}, None),
    ({"analyses": [{"name": "a", "verdict": "successful"},
                   {"name": "b", "verdict": "inconclusive"}]}, "b"),
    ({"analysis": {"name": "gate", "verdict": "failed"}}, "gate"),
    ({"analysis": {"name": "gate", "verdict": "error"}}, "gate"),
    ({"analyses": [{"name": "no verdict"}, "junk"]}, None),
    ({"analyses": "junk"}, None),
])
def test_failed_analysis(data, expected) -> None:
    found = failed_analysis(data)

    assert (found["name"] if found else None) == expected


def test_approval_wait_sends_paused(tmp_path: Path) -> None:
    context = make_context(MemoryTarget([]), clock=FakeClock(),
                           plan_file=tmp_path / "shipline.yml")
    messages: list[str] = []
    context.on_paused = messages.append
    result = wait_for_approval({"file": "approvals/prod", "timeout": "1m"}, context)

    assert not result.approved
    assert messages == ["waiting up to 1m for approval: create approvals/prod"]


def test_approval_already_given_not_paused(tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    context = make_context(MemoryTarget([]), clock=FakeClock(),
                           plan_file=tmp_path / "shipline.yml")
    messages: list[str] = []
    context.on_paused = messages.append
    result = wait_for_approval({"file": "go"}, context)

    assert result.approved
    assert messages == []


def test_notify_paused_without_runner(tmp_path: Path) -> None:
    context = make_context(MemoryTarget([]), plan_file=tmp_path / "shipline.yml")

    context.notify_paused("nobody listens")


def test_center_idempotency_keys_unique_across_threads(tmp_path: Path) -> None:
    context = make_context(MemoryTarget([]), plan_file=tmp_path / "shipline.yml")
    center = NotificationCenter(context.plan, context.config, context, environ={})
    keys: list[str] = []
    lock = threading.Lock()

    def build_many() -> None:
        for _ in range(200):
            key = center.build("started", "record", {}, message="m").idempotency_key
            with lock:
                keys.append(key)

    threads = [threading.Thread(target=build_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(keys)) == 800


def test_signal_during_final_wait_keeps_reports(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    with Recorder() as recorder:
        recorder.route("/hook", HANG)
        (tmp_path / "shipline.yml").write_text(textwrap.dedent(f"""\
            version: 1
            name: shop
            notifications:
              - {{uses: webhook, url: "{recorder.url('/hook')}", secret: abcdefgh,
                  on: [succeeded]}}
            stages:
              - name: check
                steps: [{{gate: {{uses: command, command: "true"}}}}]
            """), encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--junitxml", "report.xml",
             "--notify-timeout", "60s"],
            cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        recorder.wait_for(1, timeout=30)
        time.sleep(0.2)
        process.send_signal(2)
        stdout, _ = process.communicate(timeout=30)

    assert process.returncode == ExitCode.OK
    assert (tmp_path / "report.xml").exists()
    assert "warning: " in stdout
    assert "exit 0" in stdout


def test_hanging_lanes_do_not_starve_healthy_one(shipline_cli, tmp_path: Path) -> None:
    with Recorder() as recorder:
        recorder.route("/hang", HANG)
        hanging = "".join(
            f"  - {{uses: webhook, url: \"{recorder.url('/hang')}\", secret: abcdefgh, "
            f"retries: 0, on: [started]}}\n" for _ in range(5)
        )
        healthy = (f"  - {{uses: webhook, url: \"{recorder.url('/ok')}\", secret: abcdefgh, "
                   "on: [started]}\n")
        (tmp_path / "shipline.yml").write_text(
            "version: 1\nname: shop\nnotifications:\n" + hanging + healthy
            + "stages: [{name: check, steps: [{gate: {uses: command, command: 'true'}}]}]\n",
            encoding="utf-8",
        )
        result = shipline_cli("run", "--notify-timeout", "2s", cwd=tmp_path)
        received = [r.path for r in recorder.requests]

    assert result.exit_code == ExitCode.OK
    assert "/ok" in received
