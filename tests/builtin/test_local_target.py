from __future__ import annotations

import argparse
import http.client
import os
import re
import shlex
import signal
import socket
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator

from pipeline import localtarget
from pipeline.builtin import local_target
from pipeline.builtin.local_target import LocalSettings
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.errors import ShiplineError
from pipeline.localtarget import LocalTarget
from pipeline.plan import Environment, Plan
from pipeline.plugins import PluginRegistry
from pipeline.target import Capability, Router, Target

APP = Path(__file__).resolve().parents[2] / "examples" / "demo-service" / "app.py"
PYTHON = shlex.quote(sys.executable)


def _demo_command(marker: str, *extra: str) -> str:
    """The demo service command; ``marker`` in its arguments finds the processes in /proc."""
    return " ".join([PYTHON, shlex.quote(str(APP)), "--port {port}", "--version {version}",
                     f"--instance {{instance}}@{marker}", *extra])


def _processes_with(marker: str) -> list[int]:
    """Return the PIDs of live processes whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _get(url: str, path: str = "/") -> tuple[int, dict[str, str], str]:
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


@pytest.fixture
def marker() -> str:
    return f"shipline-test-{uuid.uuid4().hex}"


@pytest.fixture
def make_target(tmp_path: Path, marker: str) -> Iterator[Callable[..., LocalTarget]]:
    """Create a local target from options (demo service command by default)."""
    created: list[LocalTarget] = []

    def make(**options: Any) -> LocalTarget:
        options.setdefault("command", _demo_command(marker))
        options.setdefault("stable", "1.0.0")
        options.setdefault("instances", 1)
        settings = LocalSettings.from_options(options, workdir=tmp_path)
        target = LocalTarget.create(settings, threading.Event())
        created.append(target)
        return target

    yield make
    for target in created:
        target.close()


@pytest.fixture
def target(make_target: Callable[..., LocalTarget]) -> LocalTarget:
    """A target of one instance per slot that the test may change."""
    return make_target(instances=1)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    """A target of two instances per slot, for tests that do not change it."""
    settings = LocalSettings.from_options(
        {"command": _demo_command(f"shipline-test-{uuid.uuid4().hex}"), "stable": "1.0.0",
         "instances": 2},
        workdir=tmp_path_factory.mktemp("shared"),
    )
    target = LocalTarget.create(settings, threading.Event())
    yield target
    target.close()


def test_local_target_starts_stable_on_blue(shared: LocalTarget) -> None:
    assert shared.version("blue-1") == "1.0.0"
    assert shared.version("blue-2") == "1.0.0"
    assert shared.version("green-1") is None
    assert shared.active_slot() == "blue"


def test_local_target_router_serves_stable(shared: LocalTarget) -> None:
    status, headers, _body = _get(shared.endpoint() or "")

    assert status == 200
    assert headers["X-Shipline-Version"] == "1.0.0"
    assert headers["X-Shipline-Slot"] == "blue"


def test_local_target_is_target_and_router(shared: LocalTarget) -> None:
    assert isinstance(shared, Target)
    assert isinstance(shared, Router)
    assert shared.capabilities() == frozenset({Capability.WEIGHTS, Capability.SLOTS})


def test_local_target_instance_names(shared: LocalTarget) -> None:
    assert tuple(shared.slots()) == ("blue", "green")
    assert tuple(shared.instances()) == ("blue-1", "blue-2", "green-1", "green-2")
    assert tuple(shared.instances("green")) == ("green-1", "green-2")


def test_local_target_instances_unknown_slot(shared: LocalTarget) -> None:
    with pytest.raises(ValueError) as raised:
        shared.instances("red")

    assert str(raised.value) == "unknown slot 'red': use one of blue, green"


def test_local_target_deploy_green_and_shift(target: LocalTarget) -> None:
    cancel = threading.Event()

    result = target.deploy("green-1", "1.1.0", cancel)
    target.set_weight("green", 50)
    versions = Counter(_get(target.endpoint() or "")[1]["X-Shipline-Version"]
                       for _ in range(20))

    assert result.ok
    assert re.fullmatch(r"version 1\.1\.0 serves on 127\.0\.0\.1:\d+ \(pid \d+\)", result.message)
    assert result.duration > 0
    assert target.version("green-1") == "1.1.0"
    assert versions == Counter({"1.0.0": 10, "1.1.0": 10})


def test_local_target_switch_to_green(target: LocalTarget) -> None:
    target.deploy("green-1", "1.1.0", threading.Event())

    target.switch("green")
    status, headers, body = _get(target.endpoint() or "")

    assert status == 200
    assert headers["X-Shipline-Version"] == "1.1.0"
    assert body.startswith('{"version": "1.1.0", "instance": "green-1@')


def test_local_target_redeploy_replaces_process(target: LocalTarget, marker: str) -> None:
    before = set(_processes_with(marker))

    result = target.deploy("blue-1", "1.0.1", threading.Event())
    after = set(_processes_with(marker))

    assert result.ok
    assert target.version("blue-1") == "1.0.1"
    assert len(before - after) == 1
    assert len(after) == 1


def test_local_target_health_ok(shared: LocalTarget) -> None:
    result = shared.health("blue-1", threading.Event())

    assert result.ok
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/healthz answered 200", result.message)


def test_local_target_health_not_running(shared: LocalTarget) -> None:
    result = shared.health("green-1", threading.Event())

    assert not result.ok
    assert result.message == "not running"


def test_local_target_health_process_died(target: LocalTarget, marker: str) -> None:
    pid = next(pid for pid in _processes_with(marker)
               if f"blue-1@{marker}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(pid, signal.SIGKILL)

    result = target.health("blue-1", threading.Event())
    for _ in range(100):
        if "exited" in result.message:
            break
        threading.Event().wait(0.02)
        result = target.health("blue-1", threading.Event())

    assert not result.ok
    assert result.message == "process exited with code -9"


def test_local_target_remove_stops_process(target: LocalTarget, marker: str) -> None:
    target.deploy("green-1", "1.1.0", threading.Event())

    result = target.remove("green-1", "1.1.0", threading.Event())

    assert result.ok
    assert result.message == "stopped version 1.1.0"
    assert target.version("green-1") is None
    assert len(_processes_with(marker)) == 1


def test_local_target_remove_other_version_keeps_process(shared: LocalTarget) -> None:
    result = shared.remove("blue-1", "9.9.9", threading.Event())

    assert result.ok
    assert result.message == "runs version 1.0.0, not 9.9.9, so it was left running"
    assert shared.version("blue-1") == "1.0.0"


def test_local_target_remove_not_running(shared: LocalTarget) -> None:
    result = shared.remove("green-2", "1.1.0", threading.Event())

    assert result.ok
    assert result.message == "was not running"


def test_local_target_removed_instance_leaves_router(target: LocalTarget) -> None:
    target.deploy("green-1", "1.1.0", threading.Event())
    target.set_weight("green", 100)

    target.remove("green-1", "1.1.0", threading.Event())
    status, _headers, body = _get(target.endpoint() or "")

    assert status == 502
    assert body == "slot 'green' has no running instance\n"


def test_local_target_close_leaves_no_process(target: LocalTarget, marker: str) -> None:
    target.deploy("green-1", "1.1.0", threading.Event())
    pids = _processes_with(marker)

    target.close()
    target.close()

    assert len(pids) == 2
    assert _processes_with(marker) == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    assert target.endpoint() is None


def test_local_target_deploy_after_close_fails(target: LocalTarget, marker: str) -> None:
    target.close()

    result = target.deploy("green-1", "1.1.0", threading.Event())

    assert not result.ok
    assert result.message == "the target is closed"
    assert _processes_with(marker) == []


def test_local_target_deploy_unknown_instance(shared: LocalTarget) -> None:
    result = shared.deploy("red-1", "1.1.0", threading.Event())

    assert not result.ok
    assert result.message == "unknown instance 'red-1'"


def test_local_target_deploy_cancelled_before_start(shared: LocalTarget) -> None:
    cancel = threading.Event()
    cancel.set()

    result = shared.deploy("green-1", "1.1.0", cancel)

    assert not result.ok
    assert result.message == "cancelled before it started"


def test_local_target_command_not_found(make_target: Callable[..., LocalTarget]) -> None:
    with pytest.raises(ShiplineError) as raised:
        make_target(command="shipline-no-such-command --port {port}")

    assert str(raised.value) == ("local target: stable version '1.0.0' did not start: blue-1: "
                                 "command not found: 'shipline-no-such-command'")


def test_local_target_command_not_found_on_deploy(target: LocalTarget) -> None:
    # The new command exists for no version, so only this deploy fails.
    target.settings = LocalSettings.from_options(
        {"command": "./missing-{version} --port {port}", "stable": "1.0.0"},
        workdir=target.settings.workdir,
    )

    result = target.deploy("green-1", "1.1.0", threading.Event())

    assert not result.ok
    assert result.message == "command not found: './missing-1.1.0'"


def test_local_target_process_exits_at_once(make_target: Callable[..., LocalTarget],
                                            marker: str) -> None:
    code = "import sys; print('cannot open database'); sys.exit(3)"
    command = f"{PYTHON} -c {shlex.quote(code)} {{port}} {marker}"

    with pytest.raises(ShiplineError) as raised:
        make_target(command=command)

    assert str(raised.value) == (
        "local target: stable version '1.0.0' did not start: blue-1: process exited with "
        "code 3 before it became healthy; its last output line: cannot open database"
    )
    assert _processes_with(marker) == []


def test_local_target_exit_output_in_result(target: LocalTarget, marker: str) -> None:
    code = "import sys; print('line one'); print('line two'); sys.exit(3)"
    target.settings = LocalSettings.from_options(
        {"command": f"{PYTHON} -c {shlex.quote(code)} {{port}}", "stable": "1.0.0"},
        workdir=target.settings.workdir,
    )

    result = target.deploy("green-1", "1.1.0", threading.Event())

    assert not result.ok
    assert result.output == "line one\nline two\n"


def test_local_target_never_healthy_times_out(make_target: Callable[..., LocalTarget],
                                              marker: str) -> None:
    with pytest.raises(ShiplineError) as raised:
        make_target(command=_demo_command(marker, "--unhealthy"), start_timeout="300ms")

    assert re.fullmatch(
        r"local target: stable version '1\.0\.0' did not start: blue-1: not healthy within "
        r"300ms: http://127\.0\.0\.1:\d+/healthz answered 503; its last output line: demo-service "
        r"1\.0\.0 "
        r"listening on http://127\.0\.0\.1:\d+",
        str(raised.value),
    )
    assert _processes_with(marker) == []


def test_local_target_deploy_cancelled_while_waiting(target: LocalTarget, marker: str) -> None:
    target.settings = LocalSettings.from_options(
        {"command": _demo_command(marker, "--unhealthy"), "stable": "1.0.0"},
        workdir=target.settings.workdir,
    )
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()

    result = target.deploy("green-1", "1.1.0", cancel)

    assert not result.ok
    assert result.message.startswith("cancelled while waiting for it to become healthy")
    assert target.version("green-1") is None
    assert len(_processes_with(marker)) == 1


def _python_command(code: str, marker: str) -> str:
    """Run ``code`` with the demo service's arguments in ``sys.argv[1:]``."""
    return (f"{PYTHON} -c {shlex.quote(code)} --port {{port}} --version {{version}} "
            f"--instance {marker}")


def test_local_target_process_ignoring_sigterm_is_killed(
    target: LocalTarget, marker: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(localtarget, "STOP_GRACE", 0.2)
    # The group leader ignores SIGTERM and outlives the demo service it started.
    code = ("import signal, subprocess, sys, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"subprocess.run([sys.executable, {str(APP)!r}, *sys.argv[1:]]); time.sleep(60)")
    target.settings = LocalSettings.from_options(
        {"command": _python_command(code, marker), "stable": "1.0.0"},
        workdir=target.settings.workdir,
    )
    result = target.deploy("green-1", "1.1.0", threading.Event())
    leader = next(pid for pid in _processes_with(marker)
                  if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(
                      sys.executable.encode() + b"\0-c"))

    target.close()

    assert result.ok
    assert _processes_with(marker) == []
    assert (f"local target: green-1 (pid {leader}) ignored SIGTERM; sending SIGKILL"
            in caplog.messages)


def test_local_target_kills_children_left_in_group(target: LocalTarget, marker: str) -> None:
    # The demo service runs in the group leader; a child that ignores SIGTERM stays.
    code = ("import runpy, subprocess, sys; subprocess.Popen([sys.executable, '-c', "
            "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"time.sleep(60)', {marker!r}]); sys.argv = ['app', *sys.argv[1:]]; "
            f"runpy.run_path({str(APP)!r}, run_name='__main__')")
    target.settings = LocalSettings.from_options(
        {"command": _python_command(code, marker), "stable": "1.0.0"},
        workdir=target.settings.workdir,
    )
    result = target.deploy("green-1", "1.1.0", threading.Event())
    started = len(_processes_with(marker))

    target.close()

    assert result.ok
    assert started == 3
    assert _processes_with(marker) == []


def test_local_target_env_reaches_process(make_target: Callable[..., LocalTarget]) -> None:
    target = make_target(env={"DEMO_BEHAVIOUR": '{"1.1.0": {"error_rate": 1}}'})
    target.deploy("green-1", "1.1.0", threading.Event())
    target.set_weight("green", 50)

    statuses = Counter((headers["X-Shipline-Version"], status)
                       for status, headers, _body in (_get(target.endpoint() or "")
                                                      for _ in range(10)))

    assert statuses == Counter({("1.0.0", 200): 5, ("1.1.0", 500): 5})


def test_local_target_relative_command_runs_in_workdir(
    make_target: Callable[..., LocalTarget], tmp_path: Path, marker: str
) -> None:
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "app.py").write_bytes(APP.read_bytes())

    target = make_target(command=f"{PYTHON} service/app.py --port {{port}} "
                                 f"--version {{version}} --instance {marker}")

    assert target.version("blue-1") == "1.0.0"


def test_local_target_router_port_taken(make_target: Callable[..., LocalTarget]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        with pytest.raises(ShiplineError) as raised:
            make_target(router_port=port)

    assert str(raised.value) == (f"local target: router cannot listen on 127.0.0.1:{port}: "
                                 "Address already in use")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": "app --port {port} --name {name}"},
         "environment 'staging': local target: unknown placeholder '{name}' in command "
         "'app --port {port} --name {name}' (available: port, version, instance, slot)"),
        ({"command": "app 'unclosed {port}"},
         "environment 'staging': local target: invalid command \"app 'unclosed {port}\": "
         "No closing quotation"),
        ({"command": "app {port}", "start_timeout": "0s"},
         "environment 'staging': local target: start_timeout must be more than 0 seconds"),
    ],
)
def test_local_settings_invalid(options: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ShiplineError) as raised:
        LocalSettings.from_options({"stable": "1.0.0", **options}, tmp_path, "staging")

    assert str(raised.value) == message


def test_local_settings_defaults(tmp_path: Path) -> None:
    settings = LocalSettings.from_options(
        MappingProxyType({"type": "local", "command": "app {port}", "stable": "1.0.0"}), tmp_path)

    assert settings == LocalSettings(command="app {port}", stable="1.0.0", workdir=tmp_path,
                                     instances=2, health_path="/healthz", start_timeout=10.0,
                                     env={}, router_port=0)


# -- hooks -------------------------------------------------------------------------------


def _environment(target: dict[str, Any]) -> Environment:
    return Environment(name="staging", target=MappingProxyType(target))


def test_schema_is_valid_and_documented() -> None:
    (fragment,) = local_target.shipline_step_schemas()

    Draft202012Validator.check_schema(dict(fragment.schema))
    assert (fragment.kind, fragment.type) == ("target", "local")
    for name, prop in fragment.schema["properties"].items():
        assert prop.get("title"), name
        assert prop.get("description"), name


def test_schema_accepts_example_and_rejects_bad_values() -> None:
    (fragment,) = local_target.shipline_step_schemas()
    validator = Draft202012Validator(dict(fragment.schema))
    good = {"command": "app {port}", "stable": "1.0.0", "instances": 3,
            "start_timeout": "1m30s", "env": {"A": "b"}, "router_port": 8080}

    assert list(validator.iter_errors(good)) == []
    assert not validator.is_valid({"command": "app {port}"})
    assert not validator.is_valid({**good, "instances": 0})
    assert not validator.is_valid({**good, "start_timeout": "soon"})
    assert not validator.is_valid({**good, "health_path": "healthz"})
    assert not validator.is_valid({**good, "env": {"A": 1}})


def test_capabilities_hook_for_local_type() -> None:
    capabilities = local_target.shipline_capabilities(_environment({"type": "local"}))

    assert capabilities == frozenset({Capability.WEIGHTS, Capability.SLOTS})


def test_capabilities_hook_ignores_other_types() -> None:
    assert local_target.shipline_capabilities(_environment({"type": "command"})) is None


def test_make_target_hook_through_plugin_manager(tmp_path: Path, marker: str) -> None:
    registry = PluginRegistry()
    registry.register(local_target, name="local", origin="test")
    config = Config(options=argparse.Namespace(), registry=registry)
    environment = _environment({"type": "local", "command": _demo_command(marker),
                                "stable": "2.0.0", "instances": 1})
    plan = Plan(name="demo", file=tmp_path / "shipline.yml", stages=(),
                environments={"staging": environment}, analyses={}, notifications=(),
                state={})
    context = RunContext(plan=plan, config=config, environment=environment)

    try:
        target = context.target()
        version = target.version("blue-1")
    finally:
        context.close_targets()

    assert isinstance(target, LocalTarget)
    assert version == "2.0.0"
    assert _processes_with(marker) == []


def test_make_target_hook_ignores_other_types(tmp_path: Path) -> None:
    registry = PluginRegistry()
    config = Config(options=argparse.Namespace(), registry=registry)
    plan = Plan(name="demo", file=tmp_path / "shipline.yml", stages=(), environments={},
                analyses={}, notifications=(), state={})
    context = RunContext(plan=plan, config=config)

    result = local_target.shipline_make_target(_environment({"type": "command"}), context)

    assert result is None


PIPELINE = """\
version: 1
name: demo
environments:
  staging:
    target:
      type: local
      command: python3 app.py --port {port} --version {version}
      stable: "1.0.0"
      %s
stages:
  - name: check
    environment: staging
    steps:
      - gate: {uses: pass}
"""


def test_validate_accepts_local_target(
    shipline_cli: Callable[..., Any], write_pipeline: Callable[..., Path]
) -> None:
    path = write_pipeline(PIPELINE % "start_timeout: 2s")

    result = shipline_cli("validate", str(path), "-p", "pipeline.builtin.local_target",
                          "-p", "helpers.stepplugin")

    assert result.stderr == ""
    assert result.exit_code == 0


def test_validate_rejects_bad_local_option(
    shipline_cli: Callable[..., Any], write_pipeline: Callable[..., Path]
) -> None:
    path = write_pipeline(PIPELINE % "instances: 0")

    result = shipline_cli("validate", str(path), "-p", "pipeline.builtin.local_target",
                          "-p", "helpers.stepplugin")

    assert result.exit_code == 2
    assert (f"{path}:9:18: environments.staging.target.instances: must be 1 or more, got 0"
            in result.stderr.splitlines())
