"""The objects of the ``command`` target: each primitive runs one command template.

:mod:`pipeline.builtin.command_target` declares the target's options and checks them.
It imports this module only when a run creates the target, so ``shipline validate``
does not import the process machinery of :mod:`pipeline.commands`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.builtin.command_target import (
    CHANGING_COMMANDS,
    MAX_INSTANCES_OUTPUT,
    CommandTargetSettings,
    available_placeholders,
    capabilities_of,
)
from pipeline.commands import (
    DEFAULT_MAX_OUTPUT,
    CommandFailed,
    CommandResult,
    last_line,
    run_command,
)
from pipeline.target import Capability, InstanceResult
from pipeline.templates import TemplateError

logger = logging.getLogger("shipline")


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
                max_output=max_output, announce=command in CHANGING_COMMANDS,
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
