"""An in-memory target and router for fast strategy tests, and a harness that runs them.

:class:`MemoryTarget` implements the Target and Router protocols over a dict of
instance versions. Tests inject failures per operation, instance and version with
:meth:`MemoryTarget.fail`, and make an operation block until the run is cancelled
with :meth:`MemoryTarget.hang`. ``target.calls`` records every call, and
``target.peak`` the largest number of calls of one operation that ran at once.

:func:`run_deploy` runs one deploy step through the real plugin registry, RunContext
and Runner against a MemoryTarget, with a FakeClock unless another clock is given.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pipeline
from pipeline.clock import Clock, FakeClock
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.diagnostics import Diagnostic, format_path
from pipeline.errors import ShiplineError
from pipeline.plan import Environment, Plan, Stage, Step, freeze
from pipeline.plugins import PluginRegistry
from pipeline.runner import Runner, RunResult
from pipeline.schema import StepSchema
from pipeline.target import Capability, InstanceResult

#: The strategy plugins under test, registered by :func:`make_registry`.
STRATEGY_MODULES = (
    ("deploy", "pipeline.builtin.deploy"),
    ("rolling", "pipeline.builtin.rolling"),
    ("blue-green", "pipeline.builtin.bluegreen"),
    ("canary", "pipeline.builtin.canary"),
)


@dataclass(frozen=True)
class Call:
    """One call of a primitive: ``argument`` is the version, weight or slot, if any."""

    operation: str
    instance: str | None
    argument: str | None
    thread: str
    #: ``time.monotonic()`` at the start and the end of the call.
    started: float
    ended: float


@dataclass
class _Rule:
    operation: str
    instance: str | None
    version: str | None
    times: int | None
    message: str
    output: str
    hang: bool = False

    def matches(self, operation: str, instance: str | None, version: str | None) -> bool:
        if self.operation != operation or self.times == 0:
            return False
        if self.instance is not None and self.instance != instance:
            return False
        return self.version is None or self.version == version


class MemoryTarget:
    """A target whose instances are dict entries, and its own router when asked.

    ``instances`` lists the instances of a target without slots; ``slots`` maps slot
    names to their instances instead. Every instance starts at ``version``. With
    ``readable=False`` the target cannot read versions. ``weights`` adds the WEIGHTS
    capability; a target with slots has SLOTS. ``delay`` makes each deploy take that
    many real seconds, failed ones too, to observe parallelism and to let every deploy
    of a batch start before the first one fails.
    """

    def __init__(
        self,
        instances: Sequence[str] = (),
        *,
        version: str | None = "1.0",
        slots: Mapping[str, Sequence[str]] | None = None,
        active: str | None = None,
        weights: bool = False,
        readable: bool = True,
        delay: float = 0.0,
        endpoint: str | None = None,
    ) -> None:
        self._slots = {name: list(members) for name, members in (slots or {}).items()}
        self._order = [i for members in self._slots.values() for i in members] or list(instances)
        self.versions: dict[str, str | None] = dict.fromkeys(self._order, version)
        if slots and active is None:
            active = next(iter(self._slots))
        if active is not None:
            for name, members in self._slots.items():
                if name != active:
                    self.versions.update(dict.fromkeys(members))
        self.active: str | None = active
        self.weights: dict[str, int] = {}
        self.weighted = weights
        self.readable = readable
        self.delay = delay
        self._endpoint = endpoint
        self.calls: list[Call] = []
        self.peak: dict[str, int] = {}
        self.closed = False
        self._running: dict[str, int] = {}
        self._rules: list[_Rule] = []
        self._listeners: list[Callable[[Call], None]] = []
        self._lock = threading.Lock()

    # -- test controls ---------------------------------------------------------------

    def fail(
        self,
        operation: str,
        instance: str | None = None,
        version: str | None = None,
        *,
        times: int | None = None,
        message: str = "injected failure",
        output: str = "",
    ) -> None:
        """Make ``operation`` fail (for one instance and version, or all), ``times`` times
        or always. For ``set_weight`` and ``switch`` the failure is a ShiplineError."""
        self._rules.append(_Rule(operation, instance, version, times, message, output))

    def hang(self, operation: str, instance: str | None = None, version: str | None = None) -> None:
        """Make ``operation`` block until the cancel event it was given is set."""
        self._rules.append(_Rule(operation, instance, version, None, "cancelled", "", hang=True))

    def on_call(self, listener: Callable[[Call], None]) -> None:
        """Call ``listener`` after every recorded call (from the calling thread)."""
        self._listeners.append(listener)

    def operations(self, operation: str) -> list[Call]:
        return [call for call in self.calls if call.operation == operation]

    def touched(self, operation: str) -> list[str]:
        return [call.instance or "" for call in self.operations(operation)]

    # -- Target ------------------------------------------------------------------------

    def capabilities(self) -> frozenset[Capability]:
        found = set()
        if self._slots:
            found.add(Capability.SLOTS)
        if self.weighted:
            found.add(Capability.WEIGHTS)
        return frozenset(found)

    def slots(self) -> Sequence[str]:
        return tuple(self._slots)

    def instances(self, slot: str | None = None) -> Sequence[str]:
        if slot is None:
            return list(self._order)
        return list(self._slots[slot])

    def deploy(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        def apply() -> InstanceResult:
            with self._lock:
                self.versions[instance] = version
            return InstanceResult(instance, True, f"now runs {version}")

        return self._call("deploy", instance, version, cancel, apply)

    def health(self, instance: str, cancel: threading.Event) -> InstanceResult:
        def check() -> InstanceResult:
            if self.versions.get(instance) is None:
                return InstanceResult(instance, False, "not running")
            return InstanceResult(instance, True, "healthy")

        return self._call("health", instance, self.versions.get(instance), cancel, check)

    def version(self, instance: str) -> str | None:
        result = self._call("version", instance, None, threading.Event(),
                            lambda: InstanceResult(instance, True))
        if not self.readable or not result.ok:
            return None
        return self.versions.get(instance)

    def remove(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        def apply() -> InstanceResult:
            with self._lock:
                if self.versions.get(instance) == version:
                    self.versions[instance] = None
            return InstanceResult(instance, True, f"removed {version}")

        return self._call("remove", instance, version, cancel, apply)

    def close(self) -> None:
        self.closed = True

    # -- Router ------------------------------------------------------------------------

    def active_slot(self) -> str | None:
        return self.active

    def set_weight(self, slot: str, weight: int) -> None:
        self._route("set_weight", slot, str(weight))
        self.weights[slot] = weight

    def switch(self, slot: str) -> None:
        self._route("switch", slot, slot)
        self.active = slot
        self.weights.clear()

    def endpoint(self) -> str | None:
        return self._endpoint

    # -- recording ---------------------------------------------------------------------

    def _call(
        self,
        operation: str,
        instance: str,
        version: str | None,
        cancel: threading.Event,
        action: Callable[[], InstanceResult],
    ) -> InstanceResult:
        started = time.monotonic()
        with self._lock:
            self._running[operation] = self._running.get(operation, 0) + 1
            self.peak[operation] = max(self.peak.get(operation, 0), self._running[operation])
            rule = self._take_rule(operation, instance, version)
        try:
            if operation == "deploy" and self.delay and cancel.wait(self.delay):
                result = InstanceResult(instance, False, "cancelled")
            elif rule is not None and rule.hang:
                cancel.wait()
                result = InstanceResult(instance, False, "cancelled")
            elif rule is not None:
                result = InstanceResult(instance, False, rule.message, rule.output)
            else:
                result = action()
        finally:
            with self._lock:
                self._running[operation] -= 1
        self._record(Call(operation, instance, version, threading.current_thread().name,
                          started, time.monotonic()))
        return result

    def _route(self, operation: str, slot: str, argument: str) -> None:
        with self._lock:
            rule = self._take_rule(operation, slot, argument)
        self._record(Call(operation, slot, argument, threading.current_thread().name,
                          time.monotonic(), time.monotonic()))
        if rule is not None:
            raise ShiplineError(rule.message)

    def _take_rule(self, operation: str, instance: str | None, version: str | None) -> _Rule | None:
        for rule in self._rules:
            if rule.matches(operation, instance, version):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
        for listener in self._listeners:
            listener(call)


class MemoryRouter:
    """A router object separate from the target, for environments with ``router:``.

    It routes between the slots of ``target`` by changing the target's router state.
    """

    def __init__(self, target: MemoryTarget, capabilities: Iterable[Capability] = ()) -> None:
        self.target = target
        self._capabilities = frozenset(capabilities)
        self.closed = False

    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    def active_slot(self) -> str | None:
        return self.target.active_slot()

    def set_weight(self, slot: str, weight: int) -> None:
        self.target.set_weight(slot, weight)

    def switch(self, slot: str) -> None:
        self.target.switch(slot)

    def endpoint(self) -> str | None:
        return self.target.endpoint()

    def close(self) -> None:
        self.closed = True


class MemoryPlugin:
    """Provides target type ``memory`` (and router type ``memory``) from given objects."""

    def __init__(self, target: MemoryTarget, router: MemoryRouter | None = None) -> None:
        self.target = target
        self.router = router

    @pipeline.hookimpl
    def shipline_step_schemas(self) -> list[StepSchema]:
        return [StepSchema("target", "memory", {"properties": {}}),
                StepSchema("router", "memory", {"properties": {}})]

    @pipeline.hookimpl
    def shipline_capabilities(self, environment: Environment) -> frozenset[Capability] | None:
        if environment.target.get("type") != "memory":
            return None
        found = self.target.capabilities()
        if self.router is not None and environment.router is not None:
            found |= self.router.capabilities()
        return found

    @pipeline.hookimpl
    def shipline_make_target(self, environment: Environment) -> MemoryTarget | None:
        return self.target if environment.target.get("type") == "memory" else None

    @pipeline.hookimpl
    def shipline_make_router(self, environment: Environment) -> MemoryRouter | None:
        if environment.router is None or environment.router.get("type") != "memory":
            return None
        return self.router


def make_registry(*plugins: object) -> PluginRegistry:
    """Return a registry with the deploy step, the three strategies and ``plugins``."""
    registry = PluginRegistry()
    for name, module in STRATEGY_MODULES:
        registry.import_and_register(module, name=name, origin="built-in")
    for index, plugin in enumerate(plugins):
        registry.register(plugin, name=f"test-plugin-{index}", origin="test")
    registry.check_pending()
    return registry


def make_step(
    strategy: str,
    options: Mapping[str, Any],
    *,
    index: int = 1,
    kind: str = "deploy",
    timeout: float | None = None,
) -> Step:
    """Return a step of stage ``production``; ``strategy`` is the type (or gate ``uses``)."""
    name = f"deploy {options.get('version')}" if kind == "deploy" else f"{kind} {strategy}"
    return Step(
        id=f"production/{index}", name=name, kind=kind, type=strategy,
        options=freeze(dict(options)), plugin=strategy, stage="production", timeout=timeout,
        path=("stages", 0, "steps", index - 1),
    )


def make_plan(
    steps: Sequence[Step],
    *,
    router: bool = False,
    target: Mapping[str, Any] | None = None,
    analyses: Mapping[str, Any] | None = None,
    file: Path = Path("shipline.yml"),
    url: str | None = None,
) -> Plan:
    """Return a plan of one stage, ``production``, that runs ``steps`` in environment
    ``production`` on the ``memory`` target (and router, when ``router`` is set)."""
    environment = Environment(
        name="production",
        target=freeze(dict(target or {"type": "memory"})),
        router=freeze({"type": "memory"}) if router else None,
        url=url,
    )
    stage = Stage(name="production", steps=tuple(steps), environment="production")
    return Plan(
        name="test", file=file, stages=(stage,), environments=freeze({"production": environment}),
        analyses=freeze(dict(analyses or {})), notifications=(), state=freeze({}),
    )


class ScriptedClock(FakeClock):
    """A FakeClock that calls ``on_sleep(seconds, number)`` before each sleep, where
    ``number`` counts the sleeps from 1; tests use it to interrupt a run mid-pause or
    to create an approval file after some polls."""

    def __init__(self, on_sleep: Callable[[float, int], None]) -> None:
        super().__init__()
        self.on_sleep = on_sleep
        self.count = 0
        self._count_lock = threading.Lock()

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        with self._count_lock:
            self.count += 1
            number = self.count
        self.on_sleep(seconds, number)
        return super().sleep(seconds, cancel)


def make_config(*plugins: object, clock: Clock | None = None) -> Config:
    """Return a Config whose registry has the strategies and ``plugins``."""
    return Config(options=argparse.Namespace(), registry=make_registry(*plugins),
                  clock=clock or FakeClock())


def check_plan(plan: Plan, *plugins: object) -> list[str]:
    """Return the message of every diagnostic that ``shipline_check_plan`` finds, after
    the option it points at inside a step (``batch[1]: ...``), as validate prints it."""
    config = make_config(*plugins)
    found = config.hook.shipline_check_plan(plan=plan, config=config)
    return [_with_option(diagnostic) for diagnostics in found for diagnostic in diagnostics]


def _with_option(diagnostic: Diagnostic) -> str:
    path = list(diagnostic.path)
    if "deploy" not in path or path.index("deploy") == len(path) - 1:
        return diagnostic.message
    option = format_path(path[path.index("deploy") + 1:])
    return f"{option}: {diagnostic.message}"


def deploy_schema_errors(body: Mapping[str, Any], *plugins: object) -> list[str]:
    """Validate a deploy step body against the schema built from the strategies' fragments
    and return the error messages (empty when valid)."""
    from jsonschema import Draft202012Validator

    from pipeline.planning import full_schema

    schema, _ = full_schema(make_config(*plugins))
    validator = Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/deploy"})
    return sorted(error.message for error in validator.iter_errors(dict(body)))


def make_context(
    target: MemoryTarget,
    *,
    router: MemoryRouter | None = None,
    clock: Clock | None = None,
    plan_file: Path = Path("shipline.yml"),
    url: str | None = None,
    plugins: Sequence[object] = (),
) -> RunContext:
    """Return a RunContext for the ``production`` stage of a plan with no steps."""
    config = make_config(MemoryPlugin(target, router), *plugins, clock=clock)
    plan = make_plan([], router=router is not None, file=plan_file, url=url)
    context = RunContext(plan=plan, config=config)
    context.stage = plan.stages[0]
    context.environment = plan.environments["production"]
    return context


@dataclass
class DeployRun:
    """What :func:`run_deploy` returns: the run result and the objects it used."""

    result: RunResult
    target: MemoryTarget
    clock: Clock
    runner: Runner
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def step(self) -> Any:
        return self.result.reports[0]

    @property
    def rollbacks(self) -> list[Any]:
        return [report for report in self.result.reports if report.rollback]


def run_deploy(
    strategy: str,
    options: Mapping[str, Any],
    target: MemoryTarget,
    *,
    router: MemoryRouter | None = None,
    clock: Clock | None = None,
    extra_steps: Sequence[Step] = (),
    plugins: Sequence[object] = (),
    plan_file: Path = Path("shipline.yml"),
    analyses: Mapping[str, Any] | None = None,
    url: str | None = None,
    before_run: Callable[[Runner], None] | None = None,
) -> DeployRun:
    """Run one deploy step of ``strategy`` with ``options`` against ``target``."""
    config = make_config(MemoryPlugin(target, router), *plugins, clock=clock)
    steps = [make_step(strategy, options), *extra_steps]
    plan = make_plan(steps, router=router is not None, file=plan_file, analyses=analyses,
                     url=url)
    runner = Runner(plan, config)
    if before_run is not None:
        before_run(runner)
    result = runner.run()
    return DeployRun(result, target, config.clock, runner, dict(runner.context.outputs))


def run_plan(
    plan: Plan, *plugins: object, clock: Clock | None = None
) -> RunResult:
    """Run ``plan`` with the strategies and ``plugins`` (a target plugin among them)."""
    return Runner(plan, make_config(*plugins, clock=clock)).run()
