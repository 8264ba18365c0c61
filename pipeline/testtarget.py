"""An in-memory target for testing plugins: the ``fake`` target type.

:class:`FakeTarget` keeps the version of each instance in a dict and is its own
router when it has two slots. A pipeline selects it with::

    environments:
      production:
        target: {type: fake, slots: {blue: [b1, b2], green: [g1, g2]}, version: "1.0"}

Without ``slots`` the target has plain ``instances`` (default ``[fake-1, fake-2]``).
With slots, the first slot starts active and runs ``version``; the other runs
nothing. The target records every call, so a test can assert what a strategy or a
router plugin did, and :meth:`FakeTarget.fail` makes chosen calls fail.

:class:`FakeTargetPlugin` provides the type. :func:`pipeline.testing.run_pipeline`
registers it for every run and returns the targets it created.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import hookimpl
from pipeline.errors import ShiplineError
from pipeline.plan import Environment
from pipeline.schema import StepSchema
from pipeline.target import Capability, InstanceResult

TARGET_TYPE = "fake"

#: JSON Schema of the ``fake`` target's options.
SCHEMA: Mapping[str, Any] = {
    "properties": {
        "instances": {
            "title": "Instances",
            "description": "Instance names of a target without slots.",
            "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
            "uniqueItems": True,
        },
        "slots": {
            "title": "Slots",
            "description": "Two named lists of instances; the first slot starts active.",
            "type": "object", "minProperties": 2, "maxProperties": 2,
            "additionalProperties": {
                "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
            },
        },
        "version": {
            "title": "Version",
            "description": "The version every instance (of the first slot, with slots) "
            "runs when the target is created.",
            "type": "string", "minLength": 1, "default": "1.0",
        },
        "endpoint": {
            "title": "Endpoint",
            "description": "The URL returned by endpoint(), for probe traffic.",
            "type": "string",
        },
    },
}


@dataclass(frozen=True)
class FakeCall:
    """One recorded call: ``argument`` is the version, weight or slot, if any."""

    operation: str
    instance: str | None = None
    argument: str | None = None


class FakeTarget:
    """A Target, and with slots also a Router, whose state is a dict. Thread-safe.

    ``versions`` maps each instance to the version it runs (``None``: nothing runs).
    ``calls`` lists every primitive call in order. ``weights`` maps the slot that
    receives a share to its percent.
    """

    def __init__(
        self,
        instances: Sequence[str] = ("fake-1", "fake-2"),
        *,
        slots: Mapping[str, Sequence[str]] | None = None,
        version: str | None = "1.0",
        endpoint: str | None = None,
    ) -> None:
        self._slots = {name: tuple(members) for name, members in (slots or {}).items()}
        order = [i for members in self._slots.values() for i in members] or list(instances)
        self.versions: dict[str, str | None] = dict.fromkeys(order, version)
        self.active: str | None = None
        if self._slots:
            self.active = next(iter(self._slots))
            for name, members in self._slots.items():
                if name != self.active:
                    self.versions.update(dict.fromkeys(members))
        self.weights: dict[str, int] = {}
        self.calls: list[FakeCall] = []
        self.closed = False
        self._endpoint = endpoint
        self._failures: list[tuple[str, str | None, str]] = []
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> FakeTarget:
        """Create the target of a pipeline's ``target:`` block of type ``fake``."""
        return cls(
            tuple(options.get("instances", ("fake-1", "fake-2"))),
            slots=options.get("slots"),
            version=str(options.get("version", "1.0")),
            endpoint=options.get("endpoint"),
        )

    def fail(self, operation: str, instance: str | None = None,
             message: str = "injected failure") -> None:
        """Make every later ``operation`` call fail, on ``instance`` or on all of them.

        ``deploy``, ``health`` and ``remove`` return a failed result with ``message``;
        ``version`` returns ``None``; ``set_weight`` and ``switch`` (where ``instance``
        is the slot) raise ShiplineError with ``message``.
        """
        with self._lock:
            self._failures.append((operation, instance, message))

    def operations(self, operation: str) -> list[FakeCall]:
        """Return the recorded calls of ``operation``, in order."""
        with self._lock:
            return [call for call in self.calls if call.operation == operation]

    # -- Target ----------------------------------------------------------------------------

    def capabilities(self) -> frozenset[Capability]:
        if self._slots:
            return frozenset({Capability.SLOTS, Capability.WEIGHTS})
        return frozenset()

    def slots(self) -> Sequence[str]:
        return tuple(self._slots)

    def instances(self, slot: str | None = None) -> Sequence[str]:
        if slot is None:
            return tuple(self.versions)
        return self._slots[slot]

    def deploy(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        failure = self._record("deploy", instance, version)
        if failure is not None:
            return InstanceResult(instance, False, failure)
        with self._lock:
            self.versions[instance] = version
        return InstanceResult(instance, True, f"now runs {version}")

    def health(self, instance: str, cancel: threading.Event) -> InstanceResult:
        failure = self._record("health", instance, None)
        if failure is not None:
            return InstanceResult(instance, False, failure)
        if self.versions.get(instance) is None:
            return InstanceResult(instance, False, "not running")
        return InstanceResult(instance, True, "healthy")

    def version(self, instance: str) -> str | None:
        if self._record("version", instance, None) is not None:
            return None
        with self._lock:
            return self.versions.get(instance)

    def remove(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        failure = self._record("remove", instance, version)
        if failure is not None:
            return InstanceResult(instance, False, failure)
        with self._lock:
            if self.versions.get(instance) == version:
                self.versions[instance] = None
        return InstanceResult(instance, True, f"removed {version}")

    def close(self) -> None:
        self.closed = True

    # -- Router ----------------------------------------------------------------------------

    def active_slot(self) -> str | None:
        return self.active

    def set_weight(self, slot: str, weight: int) -> None:
        failure = self._record("set_weight", slot, str(weight))
        if failure is not None:
            raise ShiplineError(failure)
        with self._lock:
            if weight:
                self.weights = {slot: weight}
            else:
                self.weights.pop(slot, None)

    def switch(self, slot: str) -> None:
        failure = self._record("switch", slot, slot)
        if failure is not None:
            raise ShiplineError(failure)
        with self._lock:
            self.active = slot
            self.weights.clear()

    def endpoint(self) -> str | None:
        return self._endpoint

    def _record(self, operation: str, instance: str | None, argument: str | None) -> str | None:
        """Record a call; return the message of the failure planned for it, if any."""
        with self._lock:
            self.calls.append(FakeCall(operation, instance, argument))
            for failing, where, message in self._failures:
                if failing == operation and where in (None, instance):
                    return message
        return None


class FakeTargetPlugin:
    """Provides the ``fake`` target type; remembers each target by environment name.

    Targets passed in ``targets`` are used for their environments instead of new ones,
    so that a test can prepare failures or versions before the run.
    """

    def __init__(self, targets: Mapping[str, FakeTarget] | None = None) -> None:
        self.targets: dict[str, FakeTarget] = dict(targets or {})

    @hookimpl
    def shipline_step_schemas(self) -> list[StepSchema]:
        return [StepSchema(kind="target", type=TARGET_TYPE, schema=SCHEMA, plugin="fake-target",
                           description="Instances in memory, for tests.")]

    @hookimpl
    def shipline_capabilities(self, environment: Environment) -> frozenset[Capability] | None:
        if environment.target.get("type") != TARGET_TYPE:
            return None
        if environment.target.get("slots"):
            return frozenset({Capability.SLOTS, Capability.WEIGHTS})
        return frozenset()

    @hookimpl
    def shipline_make_target(self, environment: Environment) -> FakeTarget | None:
        if environment.target.get("type") != TARGET_TYPE:
            return None
        if environment.name not in self.targets:
            self.targets[environment.name] = FakeTarget.from_options(environment.target)
        return self.targets[environment.name]
