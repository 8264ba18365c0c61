from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.builtin import command_target
from pipeline.builtin.command_target import COMMAND_TARGET_SCHEMA, capabilities_of, check_options
from pipeline.clock import FakeClock
from pipeline.commands import CommandFailed
from pipeline.commandtarget import CommandRouterTarget, CommandTarget, make_command_target
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.diagnostics import Diagnostic
from pipeline.plan import Environment, Plan, freeze
from pipeline.plugins import PluginRegistry
from pipeline.schema import build_schema
from pipeline.target import Capability, Router, Target

#: Writes "<version>" to "<instance>.version" in the working directory.
DEPLOY = "sh -c 'printf %s\\\\n \"$2\" > \"$1.version\"' deploy {instance} {version}"
#: Prints what DEPLOY wrote.
VERSION = "cat {instance}.version"
#: Sets and prints the router state kept in files of the working directory.
ROUTER = {
    "active_slot": "cat active",
    "switch": "sh -c 'printf %s \"$1\" > active' switch {slot}",
    "set_weight": "sh -c 'printf \"%s %s\" \"$1\" \"$2\" > weight' set_weight {slot} {weight}",
}
SLOTS = {"blue": ["blue-1", "blue-2"], "green": ["green-1", "green-2"]}


def target(folder: Path, **options: Any) -> CommandTarget:
    return make_command_target(freeze({"type": "command", "deploy": DEPLOY, **options}), folder)


def router(folder: Path, **options: Any) -> CommandRouterTarget:
    created = target(folder, slots=SLOTS, **{**ROUTER, **options})
    assert isinstance(created, CommandRouterTarget)
    return created


def plan_with(folder: Path, options: Mapping[str, Any]) -> Plan:
    environment = Environment(name="production", target=freeze(options))
    return Plan(
        name="shop", file=folder / "shipline.yml", stages=(),
        environments=MappingProxyType({"production": environment}),
        analyses=MappingProxyType({}), notifications=(), state=MappingProxyType({}),
    )


def config() -> Config:
    return Config(options=argparse.Namespace(), registry=PluginRegistry(), clock=FakeClock())


# -- instances -----------------------------------------------------------------------------


def test_instances_from_list(tmp_path: Path) -> None:
    created = target(tmp_path, instances=["web-1", "web-2"])

    assert created.instances() == ("web-1", "web-2")
    assert created.slots() == ()


def test_instances_from_command(tmp_path: Path) -> None:
    created = target(tmp_path, instances_command="printf 'web-1\\n\\n  web-2  \\n\\n'")

    assert created.instances() == ("web-1", "web-2")


def test_instances_command_runs_once(tmp_path: Path) -> None:
    created = target(tmp_path, instances_command="sh -c 'echo web-1; echo x >> calls'")

    created.instances()
    created.instances()

    assert (tmp_path / "calls").read_text() == "x\n"


def test_instances_command_ignores_stderr(tmp_path: Path) -> None:
    created = target(tmp_path, instances_command="sh -c 'echo warning >&2; echo web-1'")

    assert created.instances() == ("web-1",)


def test_instances_command_fails(tmp_path: Path) -> None:
    created = target(tmp_path, instances_command="sh -c 'echo no inventory >&2; exit 2'")

    with pytest.raises(CommandFailed) as caught:
        created.instances()

    assert str(caught.value) == "instances_command failed: exit code 2: no inventory"


def test_instances_command_prints_nothing(tmp_path: Path) -> None:
    created = target(tmp_path, instances_command="true")

    with pytest.raises(CommandFailed) as caught:
        created.instances()

    assert str(caught.value) == "instances_command printed no instances: 'true'"


def test_instances_command_duplicate(tmp_path: Path) -> None:
    created = target(tmp_path, instances_command="printf 'web-1\\nweb-1\\n'")

    with pytest.raises(CommandFailed) as caught:
        created.instances()

    assert str(caught.value) == "instances_command printed 'web-1' more than once"


def test_instances_of_slots(tmp_path: Path) -> None:
    created = target(tmp_path, slots=SLOTS)

    assert created.slots() == ("blue", "green")
    assert created.instances() == ("blue-1", "blue-2", "green-1", "green-2")
    assert created.instances("green") == ("green-1", "green-2")


def test_instances_of_unknown_slot(tmp_path: Path) -> None:
    created = target(tmp_path, slots=SLOTS)

    with pytest.raises(CommandFailed) as caught:
        created.instances("purple")

    assert str(caught.value) == "unknown slot 'purple' (slots: blue, green)"


# -- primitives ----------------------------------------------------------------------------


def test_deploy_runs_command(tmp_path: Path) -> None:
    created = target(tmp_path, instances=["web-1"], version=VERSION)

    result = created.deploy("web-1", "1.4.2", threading.Event())

    assert result.ok
    assert result.instance == "web-1"
    assert result.message == "deployed 1.4.2"
    assert created.version("web-1") == "1.4.2"


def test_deploy_value_stays_one_argument(tmp_path: Path) -> None:
    created = target(tmp_path, instances=["web-1"], version=VERSION)

    created.deploy("web-1", "1.0; touch injected", threading.Event())

    assert created.version("web-1") == "1.0; touch injected"
    assert not (tmp_path / "injected").exists()


def test_deploy_failure(tmp_path: Path) -> None:
    created = make_command_target(freeze({
        "instances": ["web-1"], "deploy": "sh -c 'echo copying; echo disk full >&2; exit 1'",
    }), tmp_path)

    result = created.deploy("web-1", "1.4.2", threading.Event())

    assert not result.ok
    assert result.message == "exit code 1: disk full"
    assert result.output == "copying\ndisk full\n"


def test_deploy_command_not_found(tmp_path: Path) -> None:
    created = make_command_target(freeze({"instances": ["web-1"], "deploy": "missing-deploy.sh"}),
                               tmp_path)

    result = created.deploy("web-1", "1.4.2", threading.Event())

    assert not result.ok
    assert result.message == "command not found: 'missing-deploy.sh'"


def test_deploy_timeout(tmp_path: Path) -> None:
    created = make_command_target(freeze({"instances": ["web-1"], "deploy": "sleep 60",
                                       "timeout": "300ms"}), tmp_path)
    started = time.monotonic()

    result = created.deploy("web-1", "1.4.2", threading.Event())

    assert time.monotonic() - started < 1.5
    assert result.message == "timed out after 300ms"


def test_deploy_cancelled(tmp_path: Path) -> None:
    created = make_command_target(freeze({"instances": ["web-1"], "deploy": "sleep 60"}),
                               tmp_path)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()

    result = created.deploy("web-1", "1.4.2", cancel)

    assert result.message == "cancelled"


def test_deploy_script_in_cwd_with_env(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    script = scripts / "deploy.sh"
    script.write_text('#!/bin/sh\necho "$1 $2 $REGION"\n')
    script.chmod(0o755)
    created = make_command_target(freeze({
        "instances": ["web-1"], "deploy": "./deploy.sh {instance} {version}",
        "cwd": "scripts", "env": {"REGION": "eu-west"},
    }), tmp_path)

    result = created.deploy("web-1", "1.4.2", threading.Event())

    assert result.ok
    assert result.output == "web-1 1.4.2 eu-west\n"


def test_deploy_in_shell_mode(tmp_path: Path) -> None:
    created = make_command_target(freeze({
        "instances": ["web-1"], "shell": True,
        "deploy": "echo {version} > {instance}.version && echo done",
    }), tmp_path)

    result = created.deploy("web-1", "1.0 $(id)", threading.Event())

    assert result.output == "done\n"
    assert (tmp_path / "web-1.version").read_text() == "1.0 $(id)\n"


def test_deploy_fills_slot(tmp_path: Path) -> None:
    created = target(tmp_path, slots=SLOTS, deploy="echo {slot}/{instance}@{version}")

    result = created.deploy("green-2", "2.0", threading.Event())

    assert result.output == "green/green-2@2.0\n"


def test_parallel_deploys_overlap(tmp_path: Path) -> None:
    names = [f"web-{n}" for n in range(20)]
    created = make_command_target(freeze({"instances": names, "deploy": "sleep 0.2"}), tmp_path)
    results = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(
            created.deploy(n, "1.0", threading.Event())))
        for n in names
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.monotonic() - started < 1.0
    assert all(result.ok for result in results)


def test_health_without_command(tmp_path: Path) -> None:
    result = target(tmp_path, instances=["web-1"]).health("web-1", threading.Event())

    assert result.ok
    assert result.message == "no health command"


def test_health_command(tmp_path: Path) -> None:
    created = target(tmp_path, instances=["web-1", "web-2"],
                  health="sh -c 'test \"$1\" = web-1 || {{ echo 503 >&2; exit 1; }}' h {instance}")

    healthy = created.health("web-1", threading.Event())
    unhealthy = created.health("web-2", threading.Event())

    assert healthy.ok
    assert healthy.message == "healthy"
    assert not unhealthy.ok
    assert unhealthy.message == "unhealthy: exit code 1: 503"


def test_version_without_command(tmp_path: Path) -> None:
    assert target(tmp_path, instances=["web-1"]).version("web-1") is None


def test_version_reads_last_line(tmp_path: Path) -> None:
    created = target(tmp_path, instances=["web-1"],
                  version="sh -c 'echo note >&2; echo banner; echo 1.4.1; echo'")

    assert created.version("web-1") == "1.4.1"


def test_version_command_fails(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    created = make_command_target(freeze({"instances": ["web-1"], "deploy": DEPLOY,
                                       "version": VERSION}), tmp_path, "production")

    caplog.set_level("DEBUG", logger="shipline")

    assert created.version("web-1") is None
    assert created.version("web-1") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    debug = [r.getMessage() for r in caplog.records
             if r.levelname == "DEBUG" and "cannot read the version" in r.getMessage()]
    assert warnings == [
        "environment production: cannot read the version of instance web-1: exit code 1: "
        "cat: web-1.version: No such file or directory (later failures of the version "
        "command are logged at DEBUG level)"
    ]
    assert debug == [
        "environment production: cannot read the version of instance web-1: exit code 1: "
        "cat: web-1.version: No such file or directory"
    ]


def test_remove_without_command(tmp_path: Path) -> None:
    result = target(tmp_path, instances=["web-1"]).remove("web-1", "2.0", threading.Event())

    assert result.ok
    assert result.message == "no remove command; 2.0 left as is"


def test_remove_command(tmp_path: Path) -> None:
    created = target(tmp_path, instances=["web-1"], remove="echo removing {version} {instance}")

    result = created.remove("web-1", "2.0", threading.Event())

    assert result.ok
    assert result.message == "removed 2.0"
    assert result.output == "removing 2.0 web-1\n"


def test_endpoint(tmp_path: Path) -> None:
    assert target(tmp_path, instances=["a"]).endpoint() is None
    assert target(tmp_path, instances=["a"], endpoint="http://127.0.0.1:8080/").endpoint() == (
        "http://127.0.0.1:8080/"
    )


# -- routing -------------------------------------------------------------------------------


def test_router_target_is_router(tmp_path: Path) -> None:
    created = router(tmp_path)

    assert isinstance(created, Router)
    assert isinstance(created, Target)
    assert created.capabilities() == {Capability.WEIGHTS, Capability.SLOTS}


def test_plain_target_is_not_router(tmp_path: Path) -> None:
    created = target(tmp_path, instances=["web-1"])

    assert isinstance(created, Target)
    assert not isinstance(created, Router)
    assert created.capabilities() == frozenset()


def test_switch_then_active_slot(tmp_path: Path) -> None:
    created = router(tmp_path)

    created.switch("green")

    assert (tmp_path / "active").read_text() == "green"
    assert created.active_slot() == "green"


def test_active_slot_empty_before_first_deploy(tmp_path: Path) -> None:
    (tmp_path / "active").write_text("\n")

    assert router(tmp_path).active_slot() is None


def test_active_slot_unknown_name(tmp_path: Path) -> None:
    (tmp_path / "active").write_text("purple\n")

    with pytest.raises(CommandFailed) as caught:
        router(tmp_path).active_slot()

    assert str(caught.value) == (
        "active_slot command printed 'purple', expected one of: blue, green"
    )


def test_active_slot_command_fails(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed) as caught:
        router(tmp_path).active_slot()

    assert str(caught.value) == (
        "active_slot command failed: exit code 1: cat: active: No such file or directory"
    )


def test_set_weight(tmp_path: Path) -> None:
    router(tmp_path).set_weight("green", 20)

    assert (tmp_path / "weight").read_text() == "green 20"


def test_set_weight_fails(tmp_path: Path) -> None:
    created = router(tmp_path, set_weight="sh -c 'echo router offline >&2; exit 1'")

    with pytest.raises(CommandFailed) as caught:
        created.set_weight("green", 50)

    assert str(caught.value) == (
        "set_weight command (slot green, weight 50) failed: exit code 1: router offline"
    )


def test_set_weight_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weight must be 0 to 100, got 101"):
        router(tmp_path).set_weight("green", 101)


def test_switch_unknown_slot(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed) as caught:
        router(tmp_path).switch("purple")

    assert str(caught.value) == "unknown slot 'purple' (slots: blue, green)"


def test_switch_without_set_weight_command(tmp_path: Path) -> None:
    created = target(tmp_path, slots=SLOTS, active_slot="cat active", switch="true")
    assert isinstance(created, CommandRouterTarget)

    with pytest.raises(CommandFailed) as caught:
        created.set_weight("green", 10)

    assert str(caught.value) == (
        "environment '': the command target has no 'set_weight' command"
    )
    assert created.capabilities() == {Capability.SLOTS}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"instances": ["a"]}, set()),
        ({"instances": ["a"], "set_weight": "x"}, set()),
        ({"slots": SLOTS, "set_weight": "x"}, set()),
        ({"slots": SLOTS, "set_weight": "x", "active_slot": "y"}, {Capability.WEIGHTS}),
        ({"slots": SLOTS, "switch": "x", "active_slot": "y"}, {Capability.SLOTS}),
    ],
)
def test_capabilities_of(options: dict[str, Any], expected: set[Capability]) -> None:
    assert capabilities_of(options) == expected


# -- validation and hooks ------------------------------------------------------------------


def test_check_options_unknown_placeholder() -> None:
    problems = check_options({"instances": ["a"], "deploy": "deploy.sh {instance} {weight}"})

    assert problems == [("deploy", "unknown placeholder '{weight}' in command "
                         "'deploy.sh {instance} {weight}' (available: instance, version, "
                         "package)", None)]


def test_check_options_slot_needs_slots() -> None:
    with_slots = check_options({"slots": SLOTS, "deploy": "deploy.sh {slot}"})
    without = check_options({"instances": ["a"], "deploy": "deploy.sh {slot}"})

    assert with_slots == []
    assert without == [("deploy", "unknown placeholder '{slot}' in command 'deploy.sh {slot}' "
                        "(available: instance, version, package)", None)]


def test_check_options_unbalanced_quote() -> None:
    problems = check_options({"instances": ["a"], "deploy": "deploy.sh 'x"})

    assert problems == [("deploy", "invalid command \"deploy.sh 'x\": No closing quotation",
                         None)]


def test_check_options_router_command_needs_slots() -> None:
    problems = check_options({"instances": ["a"], "deploy": "d", "switch": "s {slot}"})

    assert problems == [(
        "switch", "'switch' needs 'slots' and 'active_slot'",
        "list the instances of two slots under 'slots:' and add an 'active_slot' command "
        "that prints the slot serving traffic",
    )]


def test_check_options_instance_in_both_slots() -> None:
    problems = check_options({"slots": {"blue": ["a", "b"], "green": ["b"]}, "deploy": "d"})

    assert problems == [("slots", "instance 'b' is in both slots 'blue' and 'green'", None)]


def test_check_plan_reports_path(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"type": "command", "instances": ["a"], "deploy": "d {foo}"})

    diagnostics = command_target.shipline_check_plan(plan, config())

    assert diagnostics == [Diagnostic(
        "unknown placeholder '{foo}' in command 'd {foo}' (available: instance, version, "
        "package)",
        None, ("environments", "production", "target", "deploy"),
    )]


def test_check_plan_ignores_other_targets(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"type": "local", "deploy": "{foo}"})

    assert command_target.shipline_check_plan(plan, config()) == []


def test_capabilities_hook(tmp_path: Path) -> None:
    options = {"type": "command", "slots": SLOTS, "deploy": "d", **ROUTER}
    other = Environment(name="staging", target=freeze({"type": "local"}))

    environment = plan_with(tmp_path, options).environments["production"]

    assert command_target.shipline_capabilities(environment) == frozenset(
        {Capability.WEIGHTS, Capability.SLOTS}
    )
    assert command_target.shipline_capabilities(other) is None


def test_make_target_hook_runs_in_pipeline_folder(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"type": "command", "instances": ["web-1"], "deploy": DEPLOY})
    context = RunContext(plan=plan, config=config())

    created = command_target.shipline_make_target(plan.environments["production"], context)
    assert created is not None
    created.deploy("web-1", "3.0", context.cancel)

    assert (tmp_path / "web-1.version").read_text() == "3.0\n"


def test_make_target_hook_ignores_other_types(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"type": "local"})
    context = RunContext(plan=plan, config=config())

    assert command_target.shipline_make_target(plan.environments["production"], context) is None


# -- schema --------------------------------------------------------------------------------


def validate(options: Mapping[str, Any]) -> list[str]:
    validator = Draft202012Validator(COMMAND_TARGET_SCHEMA)
    return [error.message for error in validator.iter_errors(options)]


def test_schema_accepts_each_instance_source() -> None:
    assert validate({"deploy": "d", "instances": ["a"]}) == []
    assert validate({"deploy": "d", "instances_command": "list"}) == []
    assert validate({"deploy": "d", "slots": SLOTS, **ROUTER, "timeout": "30s"}) == []


def test_schema_needs_one_instance_source() -> None:
    assert validate({"deploy": "d"}) != []
    assert validate({"deploy": "d", "instances": ["a"], "instances_command": "x"}) != []


def test_schema_needs_exactly_two_slots() -> None:
    assert validate({"deploy": "d", "slots": {"blue": ["a"]}}) != []
    assert validate({"deploy": "d", "slots": {"a": ["1"], "b": ["2"], "c": ["3"]}}) != []


def test_schema_needs_deploy() -> None:
    assert validate({"instances": ["a"]}) == ["'deploy' is a required property"]


def test_schema_merges_into_pipeline_schema() -> None:
    schema = build_schema(command_target.shipline_step_schemas())

    assert schema["$defs"]["target"]["properties"]["type"]["enum"] == ["command"]


def test_schema_documents_every_property() -> None:
    undocumented = [name for name, subschema in COMMAND_TARGET_SCHEMA["properties"].items()
                    if "title" not in subschema or "description" not in subschema]

    assert undocumented == []


CWD_PIPELINE = """\
    version: 1
    name: shop
    environments:
      production:
        target:
          type: command
          cwd: {cwd}
          deploy: touch deployed-{{instance}}
          version: echo 1.0
          instances: [web-1, web-2]
    stages:
      - name: roll
        environment: production
        steps:
          - deploy: {{version: "2.0", strategy: rolling, previous_version: "1.0"}}
    """


@pytest.mark.parametrize(("make", "problem"), [
    (lambda folder: None, "does not exist: create it before this step, or fix 'cwd'"),
    (lambda folder: folder.write_text("", encoding="utf-8"),
     "is not a folder: set 'cwd' to a folder"),
])
def test_run_with_bad_cwd_fails_before_any_command(
    shipline_cli: Any, write_pipeline: Any, tmp_path: Path, make: Any, problem: str,
) -> None:
    make(tmp_path / "releases")
    write_pipeline(CWD_PIPELINE.format(cwd="releases"))

    result = shipline_cli("run", "shipline.yml", cwd=tmp_path)

    assert result.exit_code == 1, result.stdout
    assert (f"environment 'production': command target: cwd '{tmp_path / 'releases'}' "
            f"{problem}") in result.stdout
    assert "ROLLBACK FAILED" not in result.stdout
    assert list(tmp_path.glob("**/deployed-*")) == []
