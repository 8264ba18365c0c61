"""Whole pipelines through shipline with the nginx router, run by the
``shipline_pipeline`` fixture of :mod:`pipeline.testing` against real services.

Pauses take no time (a fake clock), but each pause first counts what nginx serves,
so the tests see the split at every canary step.
"""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from nginx_fixtures import SCRIPTS, Nginx
from shipline_nginx.render import RoutingState, read_state

from pipeline.clock import FakeClock
from pipeline.testing import PipelineRun

CTL = f"{sys.executable} {SCRIPTS / 'instancectl.py'}"


class MeasuringClock(FakeClock):
    """A fake clock that counts 100 requests through nginx before each sleep."""

    def __init__(self, nginx: Nginx) -> None:
        super().__init__()
        self.nginx = nginx
        self.measured: list[collections.Counter[str]] = []

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        self.measured.append(self.nginx.served(100))
        return super().sleep(seconds, cancel)


def command_pipeline(nginx: Nginx, blue: str, green: str, *steps: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "shop",
        "environments": {"production": {
            "target": {
                "type": "command",
                "slots": {"blue": [blue], "green": [green]},
                "deploy": f"{CTL} deploy {{instance}} {{version}}",
                "health": f"{CTL} health {{instance}}",
                "version": f"{CTL} version {{instance}}",
            },
            "router": nginx.router_options(),
        }},
        "stages": [{"name": "production", "environment": "production", "steps": list(steps)}],
    }


def state_of(nginx: Nginx) -> RoutingState | None:
    return read_state(nginx.upstream.read_text())


def test_pipeline_first_deploy_then_canary(
    nginx: Nginx, service: Callable[[str], str], shipline_pipeline: Callable[..., PipelineRun]
) -> None:
    blue, green = service("0.9"), service("0.9")
    first = command_pipeline(nginx, blue, green,
                             {"deploy": {"version": "1.0", "strategy": "blue-green"}})
    canary = command_pipeline(nginx, blue, green, {"deploy": {
        "version": "2.0", "strategy": "canary",
        "steps": [{"set_weight": 25}, {"pause": "5m"}, {"set_weight": 50}, {"pause": "5m"}],
    }})
    clock = MeasuringClock(nginx)

    installed = shipline_pipeline(first, plugins=["shipline_nginx"])
    assert installed.exit_code == 0, installed.output
    assert nginx.served(100) == {"1.0": 100}

    run = shipline_pipeline(canary, plugins=["shipline_nginx"], clock=clock)

    assert run.exit_code == 0, run.output
    assert run.report("production/1").message == (
        "2.0 promoted after 4 steps: slot 'green' serves all traffic")
    # The two canary pauses, then the wait before the old slot is scaled down.
    assert clock.measured == [{"1.0": 75, "2.0": 25}, {"1.0": 50, "2.0": 50}, {"2.0": 100}]
    assert nginx.served(1000) == {"2.0": 1000}
    assert state_of(nginx) == RoutingState("green")


def test_pipeline_failed_gate_switches_back(
    nginx: Nginx, service: Callable[[str], str], shipline_pipeline: Callable[..., PipelineRun]
) -> None:
    blue, green = service("1.0"), service("0.9")
    nginx.upstream.write_text(
        "# shipline-nginx-state: " + RoutingState("blue").to_json() + "\n"
        + f"upstream shipline {{ server {blue}; }}\n")
    pipeline = command_pipeline(
        nginx, blue, green,
        {"deploy": {"version": "2.0", "strategy": "blue-green"}},
        {"gate": {"uses": "command", "command": "false", "retries": 0}},
    )

    run = shipline_pipeline(pipeline, plugins=["shipline_nginx"])

    assert run.exit_code == 1, run.output
    assert run.report("production/1/rollback").message == (
        "traffic back on slot 'blue' (nothing to restore: the instance still ran the previous "
        "version (1.0)); "
        "removed 2.0 from 1 instance of slot 'green'")
    assert nginx.served(200) == {"1.0": 200}
    assert state_of(nginx) == RoutingState("blue")


def local_pipeline(nginx: Nginx, deploy: dict[str, Any]) -> dict[str, Any]:
    command = f"{sys.executable} {SCRIPTS / 'service.py'} --port {{port}} --version {{version}}"
    return {
        "version": 1,
        "name": "shop",
        "environments": {"production": {
            "target": {"type": "local", "command": command, "stable": "1.0", "instances": 2},
            "router": nginx.router_options(),
        }},
        "stages": [{"name": "production", "environment": "production", "steps": [
            {"deploy": deploy},
        ]}],
    }


def test_pipeline_blue_green_on_local_target(
    nginx: Nginx, shipline_pipeline: Callable[..., PipelineRun]
) -> None:
    pipeline = local_pipeline(nginx, {"version": "2.0", "strategy": "blue-green"})
    clock = MeasuringClock(nginx)

    run = shipline_pipeline(pipeline, plugins=["shipline_nginx"], clock=clock)

    assert run.exit_code == 0, run.output
    # The wait before the blue slot is scaled down: nginx sends everything to green.
    assert clock.measured == [{"2.0": 100}]
    assert state_of(nginx) == RoutingState("green")


def test_pipeline_blue_green_on_local_target_twice(
    nginx: Nginx, shipline_pipeline: Callable[..., PipelineRun]
) -> None:
    # The first run leaves green active in the file, but the local target starts every
    # run with the stable version on blue, so the second run must start from blue.
    pipeline = local_pipeline(nginx, {"version": "2.0", "strategy": "blue-green"})

    for attempt in ("first", "second"):
        clock = MeasuringClock(nginx)
        run = shipline_pipeline(pipeline, plugins=["shipline_nginx"], clock=clock)

        assert run.exit_code == 0, f"{attempt} run: {run.output}"
        assert clock.measured == [{"2.0": 100}], f"{attempt} run"
        assert state_of(nginx) == RoutingState("green"), f"{attempt} run"


def test_pipeline_canary_on_local_target_twice(
    nginx: Nginx, shipline_pipeline: Callable[..., PipelineRun]
) -> None:
    pipeline = local_pipeline(nginx, {
        "version": "2.0", "strategy": "canary", "steps": [{"set_weight": 25}, {"pause": "5m"}],
    })

    for attempt in ("first", "second"):
        clock = MeasuringClock(nginx)
        run = shipline_pipeline(pipeline, plugins=["shipline_nginx"], clock=clock)

        assert run.exit_code == 0, f"{attempt} run: {run.output}"
        assert clock.measured[0] == {"1.0": 75, "2.0": 25}, f"{attempt} run"
        assert state_of(nginx) == RoutingState("green"), f"{attempt} run"


@pytest.mark.parametrize(("target", "router", "message"), [
    ({"instances": ["web-1"]}, {},
     "environments.production.target: the nginx router needs a target with two slots "
     "(list the instances of each slot under 'slots:', such as {blue: [...], green: [...]})"),
    ({"slots": {"blue": ["web-1"], "green": ["127.0.0.1:8002"]}}, {},
     "environments.production.router: instance 'web-1' has no address for nginx "
     "(add it under 'servers:' as web-1: host:port)"),
    ({"slots": {"blue": ["web-1"], "green": ["web-2"]}},
     {"servers": {"web-1": "10.0.0.1:80", "web-2": "10.0.0.2:80", "web-3": "10.0.0.3:80"}},
     "environments.production.router: 'servers' names 'web-3', which is not an instance "
     "of the target (use one of web-1, web-2, or remove the entry)"),
])
def test_pipeline_check_rejects_unroutable_target(
    target: dict[str, Any], router: dict[str, Any], message: str,
    shipline_pipeline: Callable[..., PipelineRun], tmp_path: Path,
) -> None:
    pipeline = {
        "version": 1,
        "name": "shop",
        "environments": {"production": {
            "target": {"type": "command", "deploy": "true", **target},
            "router": {"type": "nginx", "config": "upstream.conf", **router},
        }},
        "stages": [{"name": "production", "environment": "production", "steps": [
            {"deploy": {"version": "2.0", "strategy": "blue-green"}},
        ]}],
    }

    run = shipline_pipeline(yaml.safe_dump(pipeline, sort_keys=False),
                            plugins=["shipline_nginx"])

    assert run.exit_code == 2
    assert run.errors.endswith(message), run.errors
    assert not (tmp_path / "upstream.conf").exists()


@pytest.mark.parametrize(("instances", "message"), [
    ({}, "environments.production.router: 'servers' cannot be used with the local target, "
     "which supplies the addresses of its instances itself (remove 'servers' from the "
     "router)"),
    ({"instances": 1}, "environments.production.router: 'servers' cannot be used with the "
     "local target, which supplies the addresses of its instances itself (remove 'servers' "
     "from the router)"),
])
def test_pipeline_check_rejects_local_servers(
    instances: dict[str, Any], message: str,
    shipline_pipeline: Callable[..., PipelineRun], tmp_path: Path,
) -> None:
    pipeline = {
        "version": 1,
        "name": "shop",
        "environments": {"production": {
            "target": {"type": "local", "command": "true {port}", "stable": "1.0", **instances},
            "router": {"type": "nginx", "config": "upstream.conf",
                       "servers": {"blue-1": "127.0.0.1:8001", "blue-3": "127.0.0.1:8003"}},
        }},
        "stages": [{"name": "production", "environment": "production", "steps": [
            {"deploy": {"version": "2.0", "strategy": "blue-green"}},
        ]}],
    }

    run = shipline_pipeline(yaml.safe_dump(pipeline, sort_keys=False),
                            plugins=["shipline_nginx"])

    assert run.exit_code == 2
    assert run.errors.endswith(message), run.errors
    assert not (tmp_path / "upstream.conf").exists()
