"""``run --events``: the JSON Lines event log of real runs, every line checked against
``schemas/events.schema.json``."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import pipeline
from helpers import stepplugin
from helpers.memorytarget import MemoryTarget, run_deploy
from pipeline.analysis import MeasurementRequest
from pipeline.builtin.eventlog import (
    EventLog,
    EventReporter,
    analyses_in,
    rfc3339,
    to_json_value,
)
from pipeline.clock import FakeClock
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.exitcodes import ExitCode
from pipeline.masking import Masker
from pipeline.notification import Delivery, Notification
from pipeline.plugins import PluginRegistry
from pipeline.report import Outcome, StepReport

TESTS = Path(__file__).resolve().parents[1]
SCHEMA_FILE = TESTS.parent / "schemas" / "events.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

PLUGINS = ("-p", "helpers.stepplugin", "-p", "pipeline.builtin.eventlog")

PIPELINE = """\
version: 1
name: shop
environments:
  prod: {target: {type: none}}
stages:
  - name: checks
    steps:
      - name: smoke
        gate: {uses: echo, message: "token ${DEPLOY_TOKEN} accepted"}
  - name: ship
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0"}
      - name: verify
        gate: {uses: fail, message: "error rate too high"}
      - name: never
        gate: {uses: pass}
  - name: after
    needs: [ship]
    steps:
      - gate: {uses: pass}
"""

SECRET = "s3cr3t-token-value"


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()


def read_events(text: str) -> list[dict[str, Any]]:
    """Parse JSON Lines and check every line against the published schema."""
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        event = json.loads(line)
        errors = [error.message for error in VALIDATOR.iter_errors(event)]
        assert errors == [], f"line {number}: {line}"
        events.append(event)
    return events


def run_pipeline(shipline_cli, write_pipeline, tmp_path: Path, monkeypatch,
                 *extra: str) -> tuple[int, list[dict[str, Any]]]:
    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    write_pipeline(PIPELINE)
    result = shipline_cli("run", *PLUGINS, "--events", "out/events.jsonl", *extra,
                          cwd=tmp_path)
    text = (tmp_path / "out" / "events.jsonl").read_text(encoding="utf-8")
    return result.exit_code, read_events(text)


def summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Return (event, stage, step_id or outcome) per line, for order checks."""
    rows = []
    for event in events:
        detail = event.get("step_id") or event.get("outcome") or event.get("exit_code")
        rows.append((event["event"], event.get("stage"), detail))
    return rows


# -- a run with a failure and a rollback -------------------------------------------------


def test_eventlog_run_order(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    exit_code, events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)

    assert exit_code == ExitCode.FAILED
    assert summary(events) == [
        ("run_start", None, None),
        ("stage_start", "checks", None),
        ("step_start", "checks", "checks/1"),
        ("step_finish", "checks", "checks/1"),
        ("stage_finish", "checks", "passed"),
        ("stage_start", "ship", None),
        ("step_start", "ship", "ship/1"),
        ("step_finish", "ship", "ship/1"),
        ("step_start", "ship", "ship/2"),
        ("step_finish", "ship", "ship/2"),
        ("step_finish", "ship", "ship/3"),
        ("rollback", "ship", "ship/1/rollback"),
        ("stage_finish", "ship", "failed"),
        ("step_finish", "after", "after/1"),
        ("stage_finish", "after", "skipped"),
        ("run_finish", None, 1),
    ]


def test_eventlog_common_fields(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    run_ids = {event["run_id"] for event in events}

    assert len(run_ids) == 1
    assert str(uuid.UUID(run_ids.pop())) == events[0]["run_id"]
    assert {event["pipeline"] for event in events} == {"shop"}
    assert {event["schema_version"] for event in events} == {1}
    for event in events:
        assert datetime.fromisoformat(event["time"].replace("Z", "+00:00")).tzinfo is not None


def test_eventlog_run_id_differs_per_run(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, first = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    _, second = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    assert first[0]["run_id"] != second[0]["run_id"]


def test_eventlog_step_fields(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    start = next(e for e in events if e["event"] == "step_start" and e["step_id"] == "ship/1")
    finish = next(e for e in events if e["event"] == "step_finish" and e["step_id"] == "ship/2")

    assert start["environment"] == "prod"
    assert start["kind"] == "deploy"
    assert start["type"] == "record"
    assert start["plugin"] == "helpers.stepplugin"
    assert finish["name"] == "verify"
    assert finish["outcome"] == "failed"
    assert finish["message"] == "error rate too high"
    assert finish["started_at"] is not None
    assert finish["duration"] >= 0


def test_eventlog_skipped_step_and_stage(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    skipped = next(e for e in events if e["event"] == "step_finish" and e["step_id"] == "ship/3")
    stage = next(e for e in events if e["event"] == "stage_finish" and e["stage"] == "after")

    assert skipped["outcome"] == "skipped"
    assert skipped["message"] == "step 'verify' failed"
    assert skipped["started_at"] is None
    assert stage["skipped_reason"] == "needs 'ship', which failed"
    assert stage["failed_stage"] == "ship"


def test_eventlog_rollback_line(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    rollback = next(e for e in events if e["event"] == "rollback")

    assert rollback["name"] == "deploy 2.0 (record)"
    assert rollback["outcome"] == "passed"
    assert rollback["message"] == "restored the version before 2.0"
    assert rollback["environment"] == "prod"


def test_eventlog_run_finish_line(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    finish = events[-1]

    assert finish["event"] == "run_finish"
    assert finish["exit_code"] == 1
    assert finish["interrupted"] is False


def test_eventlog_masks_secrets(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    text = (tmp_path / "out" / "events.jsonl").read_text(encoding="utf-8")
    smoke = next(e for e in events if e["event"] == "step_finish" and e["step_id"] == "checks/1")

    assert SECRET not in text
    assert smoke["message"] == "token *** accepted"


def test_eventlog_stdout(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    write_pipeline(PIPELINE)
    result = shipline_cli("run", *PLUGINS, "-p", "no:terminal", "--events", "-", cwd=tmp_path)
    events = read_events(result.stdout)

    assert result.exit_code == ExitCode.FAILED
    assert events[0]["event"] == "run_start"
    assert events[-1]["event"] == "run_finish"


def test_eventlog_unwritable_path(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(PIPELINE)
    (tmp_path / "blocker").write_text("a file, not a folder", encoding="utf-8")
    result = shipline_cli("run", *PLUGINS, "--events", "blocker/events.jsonl", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    # The same message as --junitxml gives for this path.
    assert result.stderr == (
        "shipline: error: --events blocker/events.jsonl: 'blocker' is not a directory\n"
    )
    assert ("deploy", "2.0") not in stepplugin.EVENTS


def test_eventlog_path_in_sys_folder(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(PIPELINE)
    result = shipline_cli("run", *PLUGINS, "--events", "/sys/shipline-events.jsonl",
                          cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: --events /sys/shipline-events.jsonl: cannot create a file in the "
        "folder '/sys' (Permission denied); give a path in a writable folder\n"
    )
    assert ("deploy", "2.0") not in stepplugin.EVENTS


def test_eventlog_absent_without_option(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", SECRET)
    write_pipeline(PIPELINE)
    result = shipline_cli("run", *PLUGINS, cwd=tmp_path)
    assert result.exit_code == ExitCode.FAILED
    assert list(tmp_path.glob("**/*.jsonl")) == []


# -- a killed or interrupted process -----------------------------------------------------

SLOW_PIPELINE = """\
version: 1
name: shop
environments:
  prod: {target: {type: none}}
stages:
  - name: ship
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0", wait: 30, marker: started}
      - gate: {uses: pass}
"""


def start_slow_run(tmp_path: Path) -> subprocess.Popen[str]:
    (tmp_path / "shipline.yml").write_text(SLOW_PIPELINE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *PLUGINS, "--events", "events.jsonl"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    marker = tmp_path / "started"
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert marker.exists()
    return process


def test_eventlog_killed_run_keeps_lines(tmp_path):
    process = start_slow_run(tmp_path)
    process.kill()
    process.communicate(timeout=20)
    events = read_events((tmp_path / "events.jsonl").read_text(encoding="utf-8"))

    assert process.returncode == -signal.SIGKILL
    assert summary(events) == [
        ("run_start", None, None),
        ("stage_start", "ship", None),
        ("step_start", "ship", "ship/1"),
    ]


def test_eventlog_interrupted_run(tmp_path):
    process = start_slow_run(tmp_path)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)
    events = read_events((tmp_path / "events.jsonl").read_text(encoding="utf-8"))

    assert process.returncode == ExitCode.INTERRUPTED
    assert summary(events) == [
        ("run_start", None, None),
        ("stage_start", "ship", None),
        ("step_start", "ship", "ship/1"),
        ("step_finish", "ship", "ship/1"),
        ("step_finish", "ship", "ship/2"),
        ("rollback", "ship", "ship/1/rollback"),
        ("stage_finish", "ship", "interrupted"),
        ("run_finish", None, 130),
    ]
    assert events[-1]["interrupted"] is True


# -- analyses and measurements -----------------------------------------------------------


class FixedProvider:
    """Returns the scripted values in order, then repeats the last."""

    def __init__(self, values: list[Mapping[str, float | None]]) -> None:
        self.values = values

    def measure(self, request: MeasurementRequest,
                cancel: threading.Event) -> Mapping[str, float | None]:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class ProviderPlugin:
    """Provides the analysis provider ``fixed``."""

    def __init__(self, values: list[Mapping[str, float | None]]) -> None:
        self.values = values

    @pipeline.hookimpl
    def shipline_make_provider(self, name: str) -> FixedProvider | None:
        return FixedProvider(self.values) if name == "fixed" else None


ERROR_RATE = {"provider": "fixed", "success": "success_rate >= 0.99", "count": 2,
              "interval": "10s"}


def canary_events(values: list[Mapping[str, float | None]]) -> list[dict[str, Any]]:
    """Run a canary with one analysis on the in-memory target and return its events."""
    stream = io.StringIO()
    log = EventLog(stream, "<memory>", Masker(), FakeClock(), owns_stream=False)
    target = MemoryTarget(slots={"blue": ["blue-1"], "green": ["green-1"]}, weights=True,
                          endpoint="http://127.0.0.1:9/")
    run_deploy("canary", {"version": "2.0", "steps": [{"set_weight": 20},
                                                      {"analysis": "error-rate"}]},
               target, plugins=[ProviderPlugin(values), EventReporter(log)],
               analyses={"error-rate": ERROR_RATE})
    return read_events(stream.getvalue())


def test_eventlog_measurement_lines():
    events = canary_events([{"success_rate": 1.0, "latency": 0.25},
                            {"success_rate": 0.5, "latency": None}])
    measurements = [e for e in events if e["event"] == "measurement"]

    assert [m["number"] for m in measurements] == [1, 2]
    assert [m["values"] for m in measurements] == [
        {"success_rate": 1.0, "latency": 0.25},
        {"success_rate": 0.5, "latency": None},
    ]
    assert [m["verdict"] for m in measurements] == ["successful", "failed"]
    assert {m["analysis"] for m in measurements} == {"error-rate"}
    assert {m["strategy_step"] for m in measurements} == {2}
    assert {m["step_id"] for m in measurements} == {"production/1"}


def test_eventlog_measurement_time():
    events = canary_events([{"success_rate": 1.0}])
    first, second = (e for e in events if e["event"] == "measurement")
    start = datetime.fromisoformat(first["measured_at"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(second["measured_at"].replace("Z", "+00:00"))
    assert (end - start).total_seconds() == 10.0


def test_eventlog_analysis_line_order():
    events = canary_events([{"success_rate": 1.0}, {"success_rate": 0.5}])
    names = [e["event"] for e in events]
    analysis = next(e for e in events if e["event"] == "analysis")

    assert names == ["run_start", "stage_start", "step_start", "measurement", "measurement",
                     "analysis", "step_finish", "rollback", "stage_finish", "run_finish"]
    assert analysis["verdict"] == "failed"
    assert analysis["measurements"] == 2


def test_eventlog_step_data_has_analyses():
    events = canary_events([{"success_rate": 1.0}])
    finish = next(e for e in events if e["event"] == "step_finish")
    assert finish["data"]["version"] == "2.0"
    assert finish["data"]["analyses"][0]["verdict"] == "successful"


def report_with(data: Mapping[str, Any]) -> StepReport:
    return StepReport("s/1", "deploy", "deploy", Outcome.PASSED, data=data)


@pytest.mark.parametrize("data", [
    {},
    {"analyses": "not a list"},
    {"analyses": [1, "two", {"verdict": "failed"}]},
])
def test_analyses_in_skips_other_shapes(data):
    assert analyses_in(report_with(data)) == []


def test_analyses_in_skips_bad_measurements():
    data = {"analyses": [{"name": "a", "step": True, "measurements": [
        {"time": 1.0, "values": {"x": float("nan"), "y": "high", "z": 2}},
        {"time": "soon", "values": {}},
        {"values": {"x": 1.0}},
    ]}]}
    (record,) = analyses_in(report_with(data))

    assert record.strategy_step is None
    assert len(record.measurements) == 1
    assert record.measurements[0].values == {"x": None, "y": None, "z": 2.0}


# -- notifications -----------------------------------------------------------------------


def configured(tmp_path: Path) -> Config:
    """Return a Config for ``run --events`` with only the eventlog plugin, configured."""
    registry = PluginRegistry()
    registry.import_and_register("pipeline.builtin.eventlog", name="eventlog",
                                 origin="built-in")
    options = argparse.Namespace(command="run", events=str(tmp_path / "events.jsonl"))
    config = Config(options=options, registry=registry, invocation_dir=tmp_path,
                    clock=FakeClock())
    config.hook.shipline_configure.call_historic(kwargs={"config": config})
    return config


def notification(event: str, uses: str) -> Notification:
    return Notification(event=event, uses=uses, options={}, pipeline="shop",
                        message=f"shop: {event}", stage="ship", environment="prod",
                        idempotency_key=f"key-{event}-{uses}")


def test_eventlog_notification_lines(tmp_path):
    config = configured(tmp_path)
    config.masker.add(SECRET)
    context = RunContext(plan=None, config=config)  # type: ignore[arg-type]
    config.hook.shipline_notification_sent(
        notification=notification("started", "slack"), delivery=Delivery("slack", True),
        context=context)
    config.hook.shipline_notification_sent(
        notification=notification("rolled_back", "webhook"),
        delivery=Delivery("webhook", False, f"POST https://hooks.test/{SECRET} failed: HTTP 500"),
        context=context)
    config.hook.shipline_unconfigure(config=config)
    sent, failed = read_events((tmp_path / "events.jsonl").read_text(encoding="utf-8"))

    assert sent["event"] == "notification_sent"
    assert sent["notification_event"] == "started"
    assert sent["uses"] == "slack"
    assert sent["idempotency_key"] == "key-started-slack"
    assert failed["event"] == "notification_failed"
    assert failed["message"] == "POST https://hooks.test/*** failed: HTTP 500"
    assert failed["stage"] == "ship"


def test_eventlog_notifications_of_a_run(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("""\
        version: 1
        name: shop
        notifications:
          - {uses: record, on: [started, stage_succeeded, succeeded]}
        stages:
          - name: check
            steps:
              - notify: {uses: record, message: hello}
        """)
    result = shipline_cli("run", *PLUGINS, "--events", "events.jsonl", cwd=tmp_path)
    events = read_events((tmp_path / "events.jsonl").read_text(encoding="utf-8"))
    sent = [e for e in events if e["event"] == "notification_sent"]

    assert result.exit_code == ExitCode.OK
    assert sorted(e["notification_event"] for e in sent) == [
        "stage_succeeded", "started", "step", "succeeded",
    ]
    assert {e["uses"] for e in sent} == {"record"}


def test_eventlog_notifications_from_threads(tmp_path):
    config = configured(tmp_path)
    context = RunContext(plan=None, config=config)  # type: ignore[arg-type]
    start = threading.Barrier(8)

    def send(worker: int) -> None:
        start.wait()
        for number in range(50):
            config.hook.shipline_notification_sent(
                notification=notification(f"event-{worker}-{number}", "slack"),
                delivery=Delivery("slack", True, "x" * 2000), context=context)

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    config.hook.shipline_unconfigure(config=config)
    events = read_events((tmp_path / "events.jsonl").read_text(encoding="utf-8"))

    assert len(events) == 400
    assert len({e["notification_event"] for e in events}) == 400


def test_eventlog_drops_events_after_close(tmp_path):
    config = configured(tmp_path)
    reporter = config.pluginmanager.get_plugin("eventreporter")
    config.hook.shipline_unconfigure(config=config)
    reporter.shipline_notification_sent(notification("failed", "slack"), Delivery("slack", True))
    assert (tmp_path / "events.jsonl").read_text(encoding="utf-8") == ""


# -- the writer --------------------------------------------------------------------------


@pytest.fixture
def shipline_records() -> Iterator[list[logging.LogRecord]]:
    """Collect the records of the ``shipline`` logger, which does not propagate."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("shipline")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_eventlog_write_error_logged_once(shipline_records):
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w", encoding="utf-8")
    log = EventLog(stream, "pipe", Masker(), FakeClock(), owns_stream=True)
    log.emit("run_start", {"file": "shipline.yml", "stages": []})
    log.emit("run_finish", {"exit_code": 0, "duration": 0.0, "interrupted": False})
    errors = [r.getMessage() for r in shipline_records if r.levelno == logging.ERROR]

    assert len(errors) == 1
    assert errors[0].startswith("writing the event log pipe failed, later events are "
                                "dropped: [Errno 32] Broken pipe")
    with pytest.raises(BrokenPipeError):
        stream.close()


def test_rfc3339_utc_milliseconds():
    assert rfc3339(1_800_000_000.1234) == "2027-01-15T08:00:00.123Z"


def test_to_json_value_converts():
    value = {1: (float("inf"), float("nan"), 0.5), "path": Path("a/b"), "set": frozenset()}
    assert to_json_value(value) == {"1": [None, None, 0.5], "path": "a/b", "set": []}


# -- the schema --------------------------------------------------------------------------


def test_events_schema_valid():
    Draft202012Validator.check_schema(SCHEMA)


def test_events_schema_documents_every_property():
    undocumented = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                if "$ref" not in prop and not ("title" in prop and "description" in prop):
                    undocumented.append(f"{where}/{name}")
            for key, child in node.items():
                if key != "if":  # conditions name an event; they document nothing
                    visit(child, f"{where}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                visit(child, f"{where}/{index}")

    visit(SCHEMA, "#")
    assert undocumented == []


def test_events_schema_rejects_unknown_field():
    line = {"schema_version": 1, "time": "2027-01-15T08:00:00.000Z", "event": "stage_start",
            "run_id": str(uuid.uuid4()), "pipeline": "shop", "stage": "a",
            "environment": None, "extra": 1}
    errors = [error.message for error in VALIDATOR.iter_errors(line)]
    assert errors == ["Unevaluated properties are not allowed ('extra' was unexpected)"]


def test_events_schema_requires_event_fields():
    line = {"schema_version": 1, "time": "2027-01-15T08:00:00.000Z", "event": "run_finish",
            "run_id": str(uuid.uuid4()), "pipeline": "shop", "exit_code": 0}
    errors = sorted(error.message for error in VALIDATOR.iter_errors(line))
    # A failed "then" evaluates none of its properties, so exit_code counts as unexpected.
    assert errors == ["'duration' is a required property",
                      "'interrupted' is a required property",
                      "Unevaluated properties are not allowed ('exit_code' was unexpected)"]


def test_events_schema_covers_every_event(shipline_cli, write_pipeline, tmp_path, monkeypatch):
    _, run_events = run_pipeline(shipline_cli, write_pipeline, tmp_path, monkeypatch)
    analysis_events = canary_events([{"success_rate": 1.0}])
    config = configured(tmp_path)
    context = RunContext(plan=None, config=config)  # type: ignore[arg-type]
    for ok in (True, False):
        config.hook.shipline_notification_sent(
            notification=notification("failed", "slack"), delivery=Delivery("slack", ok),
            context=context)
    config.hook.shipline_unconfigure(config=config)
    notified = read_events((tmp_path / "events.jsonl").read_text(encoding="utf-8"))
    seen = {e["event"] for e in [*run_events, *analysis_events, *notified]}

    assert seen == set(SCHEMA["properties"]["event"]["enum"])



def test_eventlog_stdout_moves_progress_to_stderr(shipline_cli, write_pipeline, tmp_path):
    write_pipeline("""\
        version: 1
        name: shop
        stages: [{name: check, steps: [{gate: {uses: command, command: "true"}}]}]
        """)
    result = shipline_cli("run", "--events", "-", cwd=tmp_path)
    lines = result.stdout.splitlines()

    assert result.exit_code == ExitCode.OK
    assert all(json.loads(line)["event"] for line in lines)
    assert "stage check" in result.stderr
