from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from helpers.httpserver import HttpServer, Reply
from pipeline.builtin import gates
from pipeline.clock import FakeClock
from pipeline.config import Config
from pipeline.context import Interrupted, RunContext
from pipeline.plan import Environment, Plan, Step, freeze
from pipeline.plugins import PluginRegistry
from pipeline.report import Outcome
from pipeline.schema import build_schema


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as running:
        yield running


def make_context(folder: Path, clock: FakeClock | None = None,
                 environment: Environment | None = None) -> RunContext:
    plan = Plan(
        name="shop", file=folder / "shipline.yml", stages=(),
        environments=MappingProxyType({}), analyses=MappingProxyType({}), notifications=(),
        state=MappingProxyType({}),
    )
    config = Config(options=argparse.Namespace(), registry=PluginRegistry(),
                    clock=clock or FakeClock())
    return RunContext(plan=plan, config=config, environment=environment)


def gate(uses: str, options: Mapping[str, Any]) -> Step:
    return Step(id="smoke/0", name="check", kind="gate", type=uses, options=freeze(options),
                plugin="gates", stage="smoke")


def test_http_gate_passes(tmp_path: Path, server: HttpServer) -> None:
    server.route("/healthz", Reply(200, "ok"))

    report = gates.shipline_run_gate(gate("http", {"url": server.url("/healthz")}),
                                     make_context(tmp_path))

    assert report is not None
    assert report.outcome is Outcome.PASSED
    assert report.message == f"GET {server.url('/healthz')}: status 200"
    assert report.details == "attempts: 1 of 3\nstatus: 200\nduration: 0s"
    assert report.output == "HTTP 200 OK\nok"
    assert report.data == {"attempts": 1, "status": 200}


def test_http_gate_fails_after_retries(tmp_path: Path, server: HttpServer) -> None:
    server.route("/healthz", Reply(503))
    clock = FakeClock()

    report = gates.shipline_run_gate(
        gate("http", {"url": server.url("/healthz"), "status": [200]}),
        make_context(tmp_path, clock),
    )

    assert report is not None
    assert report.outcome is Outcome.FAILED
    assert report.message == (
        f"GET {server.url('/healthz')}: status 503, expected 200 (after 3 attempts)"
    )
    assert report.details == "attempts: 3 of 3\nstatus: 503\nduration: 3s"
    assert report.duration == 3.0
    assert clock.sleeps == [1.0, 2.0]


def test_command_gate_runs_in_pipeline_folder(tmp_path: Path) -> None:
    (tmp_path / "smoke.txt").write_text("smoke test passed\n")

    report = gates.shipline_run_gate(gate("command", {"command": "cat smoke.txt"}),
                                     make_context(tmp_path))

    assert report is not None
    assert report.outcome is Outcome.PASSED
    assert report.message == "command 'cat smoke.txt': exit code 0"
    assert report.output == "smoke test passed\n"
    assert report.details == "attempts: 1 of 1\nexit code: 0\nduration: 0s"


def test_command_gate_fails(tmp_path: Path) -> None:
    report = gates.shipline_run_gate(
        gate("command", {"command": "sh -c 'echo 2 tests failed; exit 1'"}),
        make_context(tmp_path),
    )

    assert report is not None
    assert report.outcome is Outcome.FAILED
    assert report.message == (
        "command 'sh -c 'echo 2 tests failed; exit 1'': exit code 1: 2 tests failed"
    )


def test_gate_placeholders(tmp_path: Path) -> None:
    environment = Environment(name="production", target=MappingProxyType({}))
    context = make_context(tmp_path, environment=environment)
    context.outputs["deployed-version"] = "1.4.2"

    report = gates.shipline_run_gate(
        gate("command", {"command": "test {environment}-{version} = production-1.4.2"}),
        context,
    )

    assert report is not None
    assert report.outcome is Outcome.PASSED


def test_gate_placeholders_without_deploy() -> None:
    context = make_context(Path("/tmp"))

    assert gates.gate_placeholders(context) == {}


def test_gate_cancelled_raises_interrupted(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    threading.Timer(0.1, context.cancel.set).start()

    with pytest.raises(Interrupted):
        gates.shipline_run_gate(gate("command", {"command": "sleep 60"}), context)


def test_gate_ignores_other_types(tmp_path: Path) -> None:
    report = gates.shipline_run_gate(gate("approval", {}), make_context(tmp_path))

    assert report is None


def test_estimate_http_gate_defaults(tmp_path: Path) -> None:
    step = gate("http", {"url": "http://127.0.0.1/"})

    assert gates.shipline_estimate_duration(step, make_context(tmp_path).plan) == 18.0


def test_estimate_command_gate(tmp_path: Path) -> None:
    step = gate("command", {"command": "smoke.sh", "timeout": "10s", "retries": 2})

    assert gates.shipline_estimate_duration(step, make_context(tmp_path).plan) == 33.0


def test_estimate_ignores_other_steps(tmp_path: Path) -> None:
    step = Step(id="s/0", name="x", kind="scan", type="http", options=freeze({}),
                plugin="x", stage="s")

    assert gates.shipline_estimate_duration(step, make_context(tmp_path).plan) is None


def test_step_schemas_register_http_and_command() -> None:
    fragments = gates.shipline_step_schemas()

    assert [(f.kind, f.type) for f in fragments] == [("gate", "http"), ("gate", "command")]


def test_step_schemas_merge_into_pipeline_schema() -> None:
    schema = build_schema(gates.shipline_step_schemas())

    assert schema["$defs"]["gate"]["properties"]["uses"]["enum"] == ["command", "http"]
