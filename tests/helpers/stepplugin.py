"""A plugin of test step types, loaded with ``-p helpers.stepplugin``.

Gates: ``pass``, ``fail`` (message from ``message``), ``raise`` (raises ValueError),
``wait`` (waits ``seconds`` on the run's clock, cancellable; real time when the run
uses the system clock), ``echo`` (passes with ``message`` as its message and ``output``
as captured output). Deploy strategy ``record``: records the version in ``EVENTS``,
registers a rollback, and fails when ``fail: true``; ``rollback_fails: true`` makes the
rollback raise. Notifier ``record``: appends every notification to ``EVENTS``. Target ``none``: a
target type without options, for environments whose deploys use ``record``.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import pipeline
from pipeline import Outcome, StepReport, StepSchema
from pipeline.context import RollbackFailed, RunContext
from pipeline.notification import Delivery, Notification
from pipeline.plan import Step

EVENTS: list[tuple[str, Any]] = []
WAITING = threading.Event()

_MESSAGE = {"type": "string", "title": "Message", "description": "Text of the report."}


@pipeline.hookimpl
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--echo-prefix", default="", help="text put before echo messages")


@pipeline.hookimpl
def shipline_configure(config: Any) -> None:
    EVENTS.append(("configure", config.option("echo_prefix")))


@pipeline.hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    simple = {"properties": {"message": _MESSAGE}}
    return [
        StepSchema("gate", "pass", simple),
        StepSchema("gate", "fail", simple),
        StepSchema("gate", "raise", simple),
        StepSchema("gate", "echo", {"properties": {
            "message": _MESSAGE,
            "output": {"type": "string", "title": "Output", "description": "Captured output."},
        }}),
        StepSchema("gate", "wait", {"properties": {
            "seconds": {"type": "number", "title": "Seconds", "description": "How long."},
        }, "required": ["seconds"]}),
        StepSchema("deploy", "record", {"properties": {
            "fail": {"type": "boolean", "title": "Fail", "description": "Fail the deploy."},
            "rollback_fails": {"type": "boolean", "title": "Rollback fails",
                               "description": "Make the rollback raise."},
            "wait": {"type": "number", "title": "Wait", "description": "Seconds to wait."},
            "marker": {"type": "string", "title": "Marker file",
                       "description": "Created when the wait starts."},
        }}),
        StepSchema("notify", "record", {"properties": {"message": _MESSAGE}}),
        StepSchema("target", "none", {"properties": {}}),
    ]


@pipeline.hookimpl
def shipline_run_gate(step: Step, context: RunContext) -> StepReport | None:
    message = str(step.options.get("message", ""))
    if step.type == "pass":
        return StepReport(step.id, step.name, step.kind, Outcome.PASSED, message=message)
    if step.type == "fail":
        return StepReport(step.id, step.name, step.kind, Outcome.FAILED, message=message)
    if step.type == "raise":
        raise ValueError(message or "boom")
    if step.type == "echo":
        return StepReport(step.id, step.name, step.kind, Outcome.PASSED, message=message,
                          output=str(step.options.get("output", "")))
    if step.type == "wait":
        WAITING.set()
        finished = context.sleep(float(step.options["seconds"]))
        context.check_cancelled()
        outcome = Outcome.PASSED if finished else Outcome.FAILED
        return StepReport(step.id, step.name, step.kind, outcome, message="waited")
    return None


@pipeline.hookimpl
def shipline_run_deploy(step: Step, context: RunContext) -> StepReport | None:
    if step.type != "record":
        return None
    version = str(step.options.get("version"))
    EVENTS.append(("deploy", version))

    def undo() -> str:
        EVENTS.append(("rollback", version))
        if step.options.get("rollback_fails"):
            raise RollbackFailed("could not restore", "web-1: still on " + version)
        return f"restored the version before {version}"

    context.add_rollback(step, f"undo {version}", undo)
    wait = float(step.options.get("wait", 0))
    if wait:
        WAITING.set()
        if step.options.get("marker"):
            Path(str(step.options["marker"])).touch()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not context.cancelled:
            time.sleep(0.01)
        context.check_cancelled()
    outcome = Outcome.FAILED if step.options.get("fail") else Outcome.PASSED
    if outcome is Outcome.PASSED:
        context.outputs["deployed-version"] = version
    return StepReport(step.id, step.name, step.kind, outcome, message=f"deployed {version}")


@pipeline.hookimpl
def shipline_notify(notification: Notification) -> Delivery | None:
    if notification.uses != "record":
        return None
    EVENTS.append(("notify", notification))
    return Delivery("record", True)
