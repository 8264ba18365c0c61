"""The ``command`` target: every primitive is a command template from the pipeline file.

It adapts shipline to anything with a command line (ssh, kubectl, cloud CLIs, a script
that flips a symlink). ``deploy`` is required; ``health``, ``version`` and ``remove``
are optional. Placeholders: ``{instance}``, ``{version}``, ``{weight}`` (0-100) and
``{slot}``; :data:`PLACEHOLDERS` lists which command may use which, and
``shipline validate`` rejects any other.

Instances come from one of three options: ``instances`` (a list), ``instances_command``
(one instance per line of its stdout, read once per run, blank lines ignored) or
``slots`` (two named lists, for blue-green and canary). With slots, ``active_slot``
prints the name of the slot that serves traffic, ``switch`` sends all traffic to
``{slot}`` and ``set_weight`` sends ``{weight}`` percent to ``{slot}``. The target then
also serves as the environment's router, unless the environment has a ``router:``.

Commands run in the pipeline file's folder (or ``cwd``, relative to it) with the
``env`` variables added to shipline's own environment. Without ``shell: true`` a
command never passes through a shell (see :mod:`pipeline.commands`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.diagnostics import Diagnostic
from pipeline.durations import DURATION_PATTERN, parse_duration
from pipeline.errors import ShiplineError
from pipeline.schema import StepSchema
from pipeline.target import Capability
from pipeline.templates import TemplateError, check_template, split_template

if TYPE_CHECKING:
    from pipeline.commandtarget import CommandTarget
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Environment, Plan

logger = logging.getLogger("shipline")

TARGET_TYPE = "command"

#: Seconds each command may run unless the ``timeout`` option sets another limit.
DEFAULT_TIMEOUT = 300.0

#: Bytes of stdout read from ``instances_command``; more is an error, not a cut list.
MAX_INSTANCES_OUTPUT = 4 * 1024 * 1024

#: The placeholders of each command. ``{slot}`` is also available to ``deploy``,
#: ``health``, ``version`` and ``remove`` when the target has slots: the instance's slot.
PLACEHOLDERS: Mapping[str, tuple[str, ...]] = {
    "deploy": ("instance", "version", "package"),
    "health": ("instance",),
    "version": ("instance",),
    "remove": ("instance", "version"),
    "set_weight": ("weight", "slot"),
    "switch": ("slot",),
    "active_slot": (),
    "instances_command": (),
}

_PER_INSTANCE = ("deploy", "health", "version", "remove")

#: The commands that change instances or traffic. Only these are journaled while a
#: deployment runs, so that a recovery can stop them (pipeline.orphans).
CHANGING_COMMANDS = frozenset({"deploy", "remove", "switch", "set_weight"})


# -- schema ------------------------------------------------------------------------------


def _template(title: str, description: str) -> dict[str, Any]:
    return {"title": title, "description": description, "type": "string", "minLength": 1}


_NAMES = {"type": "string", "minLength": 1}

COMMAND_TARGET_SCHEMA: Mapping[str, Any] = {
    "title": "Command target",
    "type": "object",
    "properties": {
        "instances": {
            "title": "Instances",
            "description": "The names of the instances, passed to commands as {instance}.",
            "type": "array", "items": _NAMES, "minItems": 1, "uniqueItems": True,
        },
        "instances_command": _template(
            "Instances command",
            "A command that prints one instance name per line; run once per run.",
        ),
        "slots": {
            "title": "Slots",
            "description": "Exactly two named groups of instances, such as blue and green; "
            "one serves traffic while the other receives the new version.",
            "type": "object", "minProperties": 2, "maxProperties": 2,
            "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
            "additionalProperties": {
                "type": "array", "items": _NAMES, "minItems": 1, "uniqueItems": True,
            },
        },
        "deploy": _template(
            "Deploy command",
            "Makes {instance} run {version}; exit code 0 means success.",
        ),
        "health": _template(
            "Health command",
            "Checks {instance} once; exit code 0 means healthy. Without it every "
            "instance counts as healthy.",
        ),
        "version": _template(
            "Version command",
            "Prints the version that {instance} runs (its last output line); without it "
            "rollbacks cannot tell what ran before.",
        ),
        "remove": _template(
            "Remove command",
            "Stops {version} on {instance}, to discard a canary. Without it nothing is "
            "removed.",
        ),
        "set_weight": _template(
            "Set-weight command",
            "Sends {weight} percent (0-100) of the traffic to {slot} and the rest to the "
            "active slot. Needs slots and active_slot.",
        ),
        "switch": _template(
            "Switch command",
            "Sends all traffic to {slot}, making it the active slot, and clears any "
            "weight. Needs slots and active_slot.",
        ),
        "active_slot": _template(
            "Active-slot command",
            "Prints the name of the slot that serves traffic, or nothing before the "
            "first deploy.",
        ),
        "endpoint": {
            "title": "Endpoint",
            "description": "The URL clients use, for probe traffic during a canary "
            "analysis.",
            "type": "string", "pattern": "^(https?://|\\$\\{)",
        },
        "shell": {
            "title": "Shell",
            "description": "Run every command with /bin/sh -c; placeholder values are "
            "shell-quoted. Off by default: commands run without a shell.",
            "type": "boolean", "default": False,
        },
        "timeout": {
            "title": "Timeout",
            "description": "Time limit of each command: a number of seconds or a value "
            "like 30s, 5m. The command's process group is killed when it is reached.",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "default": "5m",
        },
        "cwd": {
            "title": "Working directory",
            "description": "Folder that commands run in, relative to the pipeline file's "
            "folder (the default).",
            "type": "string", "minLength": 1,
        },
        "env": {
            "title": "Environment variables",
            "description": "Variables added to the environment of every command.",
            "type": "object", "additionalProperties": {"type": "string"},
        },
    },
    "required": ["deploy"],
    "oneOf": [
        {"required": ["instances"]},
        {"required": ["instances_command"]},
        {"required": ["slots"]},
    ],
}


# -- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandTargetSettings:
    """The options of one command target, with defaults applied and paths resolved."""

    templates: Mapping[str, str]
    instances: tuple[str, ...] = ()
    instances_command: str | None = None
    #: Slot name to its instances, in the order of the pipeline file; empty without slots.
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    shell: bool = False
    #: Seconds per command.
    timeout: float = DEFAULT_TIMEOUT
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    endpoint: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], base_dir: Path) -> CommandTargetSettings:
        """Read validated target options; ``cwd`` is taken relative to ``base_dir``."""
        templates = {name: str(options[name]) for name in PLACEHOLDERS if options.get(name)}
        instances_command = templates.pop("instances_command", None)
        slots = {str(name): tuple(map(str, items))
                 for name, items in options.get("slots", {}).items()}
        return cls(
            templates=templates,
            instances=tuple(str(name) for name in options.get("instances", ())),
            instances_command=instances_command,
            slots=slots,
            shell=bool(options.get("shell", False)),
            timeout=parse_duration(options.get("timeout", DEFAULT_TIMEOUT)),
            cwd=base_dir / str(options.get("cwd", ".")),
            env={str(key): str(value) for key, value in options.get("env", {}).items()},
            endpoint=options.get("endpoint"),
        )


def capabilities_of(options: Mapping[str, Any]) -> frozenset[Capability]:
    """Return what a command target with ``options`` can do, without creating it."""
    found = set()
    routed = bool(options.get("slots")) and bool(options.get("active_slot"))
    if routed and options.get("set_weight"):
        found.add(Capability.WEIGHTS)
    if routed and options.get("switch"):
        found.add(Capability.SLOTS)
    return frozenset(found)


def available_placeholders(command: str, has_slots: bool) -> tuple[str, ...]:
    """Return the placeholders ``command`` may use, in the order messages list them."""
    names = PLACEHOLDERS[command]
    if has_slots and command in _PER_INSTANCE:
        names = (*names, "slot")
    return names


# -- hooks -------------------------------------------------------------------------------


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="target", type=TARGET_TYPE, schema=COMMAND_TARGET_SCHEMA,
        description="Run every deploy primitive as a command template (ssh, kubectl, "
        "scripts).",
    )]


@hookimpl
def shipline_capabilities(environment: Environment) -> frozenset[Capability] | None:
    if environment.target.get("type") != TARGET_TYPE:
        return None
    return capabilities_of(environment.target)


@hookimpl
def shipline_make_target(environment: Environment, context: RunContext) -> CommandTarget | None:
    if environment.target.get("type") != TARGET_TYPE:
        return None
    from pipeline.commandtarget import make_command_target

    base_dir = Path(context.plan.file).resolve().parent
    target = make_command_target(environment.target, base_dir, environment.name)
    _check_cwd(target.settings.cwd, environment.name)
    target.package_folder = lambda version: package_folder(context, version)
    return target


def _check_cwd(cwd: Path | None, environment: str) -> None:
    """Raise ShiplineError when the commands' folder is missing, before any command runs.

    Checked when a step creates the target rather than by ``shipline validate``, because
    an earlier stage of the run may create the folder. Without this check, every
    command would fail to start, and the rollback would fail the same way.
    """
    if cwd is None or cwd.is_dir():
        return
    where = f"environment '{environment}': command target: cwd '{cwd}'"
    if cwd.exists():
        raise ShiplineError(f"{where} is not a folder: set 'cwd' to a folder")
    raise ShiplineError(f"{where} does not exist: create it before this step, or fix 'cwd'")


def package_folder(context: RunContext, version: str) -> str:
    """Return the folder of the newest package unpacked for ``version``, or ``""``."""
    for package_version, folder in reversed(context.packages):
        if package_version == version:
            return str(folder)
    return ""


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    diagnostics = []
    for environment in plan.environments.values():
        if environment.target.get("type") != TARGET_TYPE:
            continue
        path = ("environments", environment.name, "target")
        for key, message, hint in check_options(environment.target):
            # The mark is looked up from the path, so it points at the option itself.
            diagnostics.append(Diagnostic(message, None, (*path, key), hint))
    return diagnostics


def check_options(options: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """Find problems in command target options that the JSON Schema cannot express.

    Returns ``(key, message, hint)`` per problem: a template that cannot be split or
    uses an unknown placeholder, a router command without slots or ``active_slot``,
    and an instance listed in both slots.
    """
    problems: list[tuple[str, str, str | None]] = []
    has_slots = bool(options.get("slots"))
    for command in PLACEHOLDERS:
        template = options.get(command)
        if not isinstance(template, str):
            continue
        try:
            if not options.get("shell", False):
                split_template(template)
            check_template(template, available_placeholders(command, has_slots))
        except TemplateError as exc:
            problems.append((command, str(exc), None))

    for command in ("set_weight", "switch"):
        missing = [key for key in ("slots", "active_slot") if command in options
                   and not options.get(key)]
        if missing:
            needed = " and ".join(f"'{key}'" for key in missing)
            problems.append((command, f"'{command}' needs {needed}",
                             "list the instances of two slots under 'slots:' and add an "
                             "'active_slot' command that prints the slot serving traffic"))

    problems += _shared_instances(options.get("slots") or {})
    return problems


def _shared_instances(slots: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str | None]]:
    owner: dict[str, str] = {}
    problems: list[tuple[str, str, str | None]] = []
    for slot, instances in slots.items():
        for instance in instances:
            if instance in owner and owner[instance] != slot:
                problems.append(("slots", f"instance '{instance}' is in both slots "
                                 f"'{owner[instance]}' and '{slot}'", None))
            owner.setdefault(instance, slot)
    return problems
