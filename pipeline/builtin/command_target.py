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
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.commands import (
    DEFAULT_MAX_OUTPUT,
    CommandFailed,
    CommandResult,
    TemplateError,
    check_template,
    last_line,
    run_command,
    split_template,
)
from pipeline.diagnostics import Diagnostic
from pipeline.durations import DURATION_PATTERN, parse_duration
from pipeline.errors import ShiplineError
from pipeline.schema import StepSchema
from pipeline.target import Capability, InstanceResult

if TYPE_CHECKING:
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

# The commands that change instances or traffic. Only these are journaled while a
# deployment runs, so that a recovery can stop them (pipeline.orphans).
_CHANGING_COMMANDS = frozenset({"deploy", "remove", "switch", "set_weight"})


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


# -- the target --------------------------------------------------------------------------


class CommandTarget:
    """A :class:`~pipeline.target.Target` whose primitives run command templates.

    Safe to call from several threads: nothing is shared between calls except the
    instance list, which ``instances_command`` fills once under a lock.
    """

    def __init__(self, settings: CommandTargetSettings, environment: str = "") -> None:
        self.settings = settings
        self.environment = environment
        self._slot_of = {i: slot for slot, items in settings.slots.items() for i in items}
        self._instances: tuple[str, ...] | None = None
        self._lock = threading.Lock()
        #: Number of failed runs of the version command: only the first is a warning.
        self._version_failures = 0
        # Merged once per run rather than once per command: see run_command's base_env.
        # Without added variables, commands inherit shipline's environment as it is.
        self._environ = {**os.environ, **settings.env} if settings.env else None
        #: Returns the ``{package}`` folder for a version; the empty string for none.
        self.package_folder: Callable[[str], str] = lambda version: ""

    def __repr__(self) -> str:
        return f"<CommandTarget {self.environment!r}>"

    def capabilities(self) -> frozenset[Capability]:
        options = {**self.settings.templates, "slots": self.settings.slots}
        return capabilities_of(options)

    def slots(self) -> Sequence[str]:
        return tuple(self.settings.slots)

    def instances(self, slot: str | None = None) -> Sequence[str]:
        """Return all instances, or those of ``slot``; raise CommandFailed if unknown.

        Raises CommandFailed when ``instances_command`` fails, prints nothing or prints
        a name twice.
        """
        if slot is not None:
            return self.settings.slots[self._known_slot(slot)]
        if self.settings.slots:
            return tuple(self._slot_of)
        if self.settings.instances_command is None:
            return self.settings.instances
        with self._lock:
            if self._instances is None:
                self._instances = self._list_instances(self.settings.instances_command)
            return self._instances

    def deploy(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        values = {"instance": instance, "version": version,
                  "package": self.package_folder(version)}
        result = self._run("deploy", cancel, values)
        if result.ok:
            return self._instance_result(instance, result, f"deployed {version}")
        # The caller names the operation ("deploy failed: ..."), so the message does not.
        return self._instance_result(instance, result, result.message)

    def health(self, instance: str, cancel: threading.Event) -> InstanceResult:
        if "health" not in self.settings.templates:
            return InstanceResult(instance, True, "no health command")
        result = self._run("health", cancel, {"instance": instance})
        message = "healthy" if result.ok else f"unhealthy: {result.message}"
        return self._instance_result(instance, result, message)

    def version(self, instance: str) -> str | None:
        """Return the last line the ``version`` command prints; ``None`` on any failure."""
        if "version" not in self.settings.templates:
            return None
        result = self._run("version", None, {"instance": instance})
        if not result.ok:
            self._version_failed(instance, result.message)
            return None
        return last_line(result.stdout) or None

    def _version_failed(self, instance: str, message: str) -> None:
        """Log a failed version read: the first at WARNING, the rest at DEBUG, because a
        broken version command fails for every instance, twice per deploy."""
        with self._lock:
            self._version_failures += 1
            first = self._version_failures == 1
        if first:
            logger.warning("environment %s: cannot read the version of instance %s: %s "
                           "(later failures of the version command are logged at DEBUG "
                           "level)", self.environment, instance, message)
        else:
            logger.debug("environment %s: cannot read the version of instance %s: %s",
                         self.environment, instance, message)

    def remove(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        if "remove" not in self.settings.templates:
            return InstanceResult(instance, True, f"no remove command; {version} left as is")
        result = self._run("remove", cancel, {"instance": instance, "version": version})
        message = f"removed {version}" if result.ok else result.message
        return self._instance_result(instance, result, message)

    def endpoint(self) -> str | None:
        return self.settings.endpoint

    def close(self) -> None:
        """Release nothing: each command has ended before its method returned."""

    # -- helpers ---------------------------------------------------------------------------

    def _run(self, command: str, cancel: threading.Event | None,
             values: Mapping[str, str], max_output: int = DEFAULT_MAX_OUTPUT) -> CommandResult:
        """Run one of the target's commands; a template error becomes a failed result."""
        placeholders = self._placeholders(command, values)
        template = (self.settings.instances_command if command == "instances_command"
                    else self.settings.templates[command])
        assert template is not None
        try:
            return run_command(
                template, placeholders, timeout=self.settings.timeout, cancel=cancel,
                shell=self.settings.shell, cwd=self.settings.cwd, base_env=self._environ,
                max_output=max_output, announce=command in _CHANGING_COMMANDS,
            )
        except TemplateError as exc:
            return CommandResult((template,), None, error=str(exc))

    def _placeholders(self, command: str, values: Mapping[str, str]) -> dict[str, str]:
        names = available_placeholders(command, bool(self.settings.slots))
        filled = dict(values)
        instance = values.get("instance")
        if "slot" in names and "slot" not in filled and instance is not None:
            filled["slot"] = self._slot_of.get(instance, "")
        return {name: filled[name] for name in names if name in filled}

    def _instance_result(self, instance: str, result: CommandResult,
                         message: str) -> InstanceResult:
        return InstanceResult(instance, result.ok, message, result.output, result.duration)

    def _known_slot(self, slot: str) -> str:
        if slot not in self.settings.slots:
            known = ", ".join(self.settings.slots) or "none"
            raise CommandFailed(f"unknown slot '{slot}' (slots: {known})")
        return slot

    def _list_instances(self, template: str) -> tuple[str, ...]:
        result = self._run("instances_command", None, {}, MAX_INSTANCES_OUTPUT)
        if not result.ok:
            raise CommandFailed(f"instances_command failed: {result.message}", result)
        if result.stdout_truncated:
            raise CommandFailed(
                f"instances_command printed more than {MAX_INSTANCES_OUTPUT} bytes", result
            )

        names: list[str] = []
        for line in result.stdout.splitlines():
            name = line.strip()
            if not name:
                continue
            if name in names:
                raise CommandFailed(f"instances_command printed '{name}' more than once",
                                    result)
            names.append(name)
        if not names:
            raise CommandFailed(f"instances_command printed no instances: {template!r}",
                                result)
        logger.info("environment %s: instances_command listed %d instances",
                    self.environment, len(names))
        return tuple(names)


class CommandRouterTarget(CommandTarget):
    """A command target that is also the environment's :class:`~pipeline.target.Router`.

    Router commands run to the end or to their timeout even when the run is
    interrupted, because a traffic change cut off halfway is harder to undo than one
    that finished. Each method raises CommandFailed when its command fails.
    """

    def __repr__(self) -> str:
        return f"<CommandRouterTarget {self.environment!r}>"

    def active_slot(self) -> str | None:
        """Return the slot the ``active_slot`` command prints, or ``None`` if it prints none."""
        result = self._router_command("active_slot")
        name = last_line(result.stdout)
        if not name:
            return None
        if name not in self.settings.slots:
            raise CommandFailed(
                f"active_slot command printed '{name}', expected one of: "
                f"{', '.join(self.settings.slots)}", result,
            )
        return name

    def set_weight(self, slot: str, weight: int) -> None:
        if not 0 <= weight <= 100:
            raise ValueError(f"weight must be 0 to 100, got {weight}")
        self._router_command("set_weight", slot=self._known_slot(slot), weight=str(weight))

    def switch(self, slot: str) -> None:
        self._router_command("switch", slot=self._known_slot(slot))

    def _router_command(self, command: str, **values: str) -> CommandResult:
        if command not in self.settings.templates:
            raise CommandFailed(f"environment '{self.environment}': the command target has "
                                f"no '{command}' command")
        result = self._run(command, None, values)
        if not result.ok:
            arguments = ", ".join(f"{name} {value}" for name, value in values.items())
            subject = f"{command} command ({arguments})" if arguments else f"{command} command"
            raise CommandFailed(f"{subject} failed: {result.message}", result)
        logger.info("environment %s: %s %s", self.environment, command,
                    " ".join(f"{name}={value}" for name, value in values.items()))
        return result


def make_command_target(options: Mapping[str, Any], base_dir: Path,
                        environment: str = "") -> CommandTarget:
    """Create the target; a router target when ``set_weight`` or ``switch`` is set."""
    settings = CommandTargetSettings.from_options(options, base_dir)
    routed = "set_weight" in settings.templates or "switch" in settings.templates
    cls = CommandRouterTarget if routed else CommandTarget
    return cls(settings, environment)


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
            diagnostics.append(Diagnostic(message, environment.mark, (*path, key), hint))
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
