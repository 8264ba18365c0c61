"""The ``local`` target: instances are processes on 127.0.0.1 behind a weighted router.

It exists for the examples, the tests and rehearsing a pipeline on a laptop or in a CI
job. An environment such as::

    target:
      type: local
      command: python3 demo-service/app.py --port {port} --version {version}
      stable: "1.0.0"
      instances: 2

gets two slots, ``blue`` and ``green``, with instances ``blue-1``, ``blue-2``,
``green-1`` and ``green-2``. When the target is created, the ``stable`` version starts
on every blue instance and blue becomes the active slot of the router, because nothing
runs before the run. The target is its own router (a :class:`LocalRouter`): canary
weights and blue-green switches move requests between the slots.

Each deploy starts the command with ``{port}`` set to a free loopback port,
``{version}``, ``{instance}`` and ``{slot}``, in its own process group, with the
pipeline file's folder as working directory. The instance joins the router once its
health path returns status 200. Every process is stopped when the run ends, and by an
``atexit`` handler if the run does not end normally.

The processes and the router are in :mod:`pipeline.localtarget`, which this plugin
imports when a run creates the target: every shipline command imports the plugin at
start-up, and only a run starts processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.durations import DURATION_PATTERN, parse_duration
from pipeline.errors import ShiplineError
from pipeline.schema import StepSchema
from pipeline.target import Capability
from pipeline.templates import build_argv, check_template

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.localtarget import LocalTarget
    from pipeline.plan import Environment

TARGET_TYPE = "local"
SLOTS = ("blue", "green")
PLACEHOLDERS = ("port", "version", "instance", "slot")

#: Seconds a stopped process gets between SIGTERM and SIGKILL.
STOP_GRACE = 5.0

#: Seconds one health or version request may take.
REQUEST_TIMEOUT = 2.0

#: Seconds a started instance may take to pass its health check unless the
#: ``start_timeout`` option sets another limit.
DEFAULT_START_TIMEOUT = 10.0

#: Seconds between health requests while an instance starts.
POLL_INTERVAL = 0.05

CAPABILITIES = frozenset({Capability.WEIGHTS, Capability.SLOTS})

_DURATION_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "minimum": 0,
    "pattern": DURATION_PATTERN,
}

#: JSON Schema of the target's options (besides ``type``).
SCHEMA: dict[str, Any] = {
    "properties": {
        "command": {
            "title": "Command",
            "description": "Command line that starts one instance, split like a shell would "
            "split it but run without a shell. Placeholders: {port} (a free loopback port "
            "the process must listen on), {version}, {instance} and {slot}. Relative paths "
            "are relative to the pipeline file's folder.",
            "type": "string",
            "minLength": 1,
        },
        "stable": {
            "title": "Stable version",
            "description": "Version started on every blue instance when the target is "
            "created; it plays the version that ran before the deploy.",
            "type": "string",
            "minLength": 1,
        },
        "instances": {
            "title": "Instances per slot",
            "description": "Number of processes in each of the blue and green slots.",
            "type": "integer",
            "minimum": 1,
            "default": 2,
        },
        "health_path": {
            "title": "Health path",
            "description": "HTTP path that answers 200 once an instance is ready to serve.",
            "type": "string",
            "pattern": "^/",
            "default": "/healthz",
        },
        "start_timeout": {
            **_DURATION_SCHEMA,
            "title": "Start timeout",
            "description": "How long a new instance may take to answer 200 on its health "
            "path before its deploy fails.",
            "default": "10s",
        },
        "env": {
            "title": "Environment variables",
            "description": "Extra environment variables for every instance's process.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "router_port": {
            "title": "Router port",
            "description": "Loopback port of the router that clients and analyses use; "
            "0 picks a free port.",
            "type": "integer",
            "minimum": 0,
            "maximum": 65535,
            "default": 0,
        },
    },
    "required": ["command", "stable"],
}


@dataclass(frozen=True)
class LocalSettings:
    """The options of one ``local`` target, with defaults applied.

    ``start_timeout`` is in seconds; ``workdir`` is where commands run.
    """

    command: str
    stable: str
    workdir: Path
    instances: int = 2
    health_path: str = "/healthz"
    start_timeout: float = DEFAULT_START_TIMEOUT
    env: Mapping[str, str] = field(default_factory=dict)
    router_port: int = 0
    environment: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], workdir: Path,
                     environment: str = "") -> LocalSettings:
        """Read the target's options from the pipeline.

        Raises ShiplineError, naming the environment, for a command template with an
        unknown placeholder or unbalanced quotes, or a start timeout of 0. The schema
        has checked everything else.
        """
        command = str(options["command"])
        start_timeout = parse_duration(options.get("start_timeout", DEFAULT_START_TIMEOUT))
        where = f"environment '{environment}': local target" if environment else "local target"
        try:
            check_template(command, PLACEHOLDERS)
            build_argv(command, dict.fromkeys(PLACEHOLDERS, ""))
        except ShiplineError as exc:
            raise ShiplineError(f"{where}: {exc}") from exc
        if start_timeout <= 0:
            raise ShiplineError(f"{where}: start_timeout must be more than 0 seconds")

        return cls(
            command=command,
            stable=str(options["stable"]),
            workdir=workdir,
            instances=int(options.get("instances", 2)),
            health_path=str(options.get("health_path", "/healthz")),
            start_timeout=start_timeout,
            env={str(key): str(value) for key, value in (options.get("env") or {}).items()},
            router_port=int(options.get("router_port", 0)),
            environment=environment,
        )


def instance_names(count: int) -> dict[str, tuple[str, ...]]:
    """Return the instance names of each slot with ``count`` instances per slot.

    They are fixed by the options alone, so ``shipline validate`` can check them.
    """
    return {slot: tuple(f"{slot}-{number}" for number in range(1, count + 1))
            for slot in SLOTS}


# -- hooks -------------------------------------------------------------------------------


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="target", type=TARGET_TYPE, schema=SCHEMA, plugin="local",
        description="Processes on 127.0.0.1 in blue and green slots behind a weighted HTTP "
        "router, for examples, tests and rehearsals.",
    )]


@hookimpl
def shipline_capabilities(environment: Environment) -> frozenset[Capability] | None:
    if environment.target.get("type") != TARGET_TYPE:
        return None
    return CAPABILITIES


@hookimpl
def shipline_make_target(environment: Environment, context: RunContext) -> LocalTarget | None:
    if environment.target.get("type") != TARGET_TYPE:
        return None
    from pipeline.localtarget import LocalTarget

    settings = LocalSettings.from_options(
        environment.target, workdir=context.plan.file.resolve().parent,
        environment=environment.name,
    )
    return LocalTarget.create(settings, context.cancel)
