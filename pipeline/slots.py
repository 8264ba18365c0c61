"""The router, the instances that serve traffic, and deploys into the idle slot.

Blue-green and canary deploys through a router put the new version on the idle one of two
slots (:class:`SlotDeploy`) while the active slot keeps serving, then move traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.context import RollbackFailed
from pipeline.errors import ShiplineError
from pipeline.instancetable import format_table, plural, show_version
from pipeline.rollback import removal_failure, remove_version, restore_previous
from pipeline.rollouterrors import StepFailed
from pipeline.rolloutparallel import MAX_PARALLEL, call_target, run_parallel
from pipeline.target import Capability, Router, Target

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.instancetable import InstanceState
    from pipeline.rollout import HealthPolicy, Rollout

logger = logging.getLogger("shipline")


# -- router and instances ----------------------------------------------------------------


def resolve_router(context: RunContext) -> Router | None:
    """Return the router of the stage's environment.

    The environment's own ``router:`` comes first. Without one, the target is the
    router when it implements :class:`~pipeline.target.Router` and its capabilities
    include WEIGHTS or SLOTS. Otherwise there is no router.
    """
    router = context.router()
    if router is not None:
        return router

    target = context.target()
    if isinstance(target, Router) and target.capabilities() & {
        Capability.WEIGHTS,
        Capability.SLOTS,
    }:
        return target
    return None


def capabilities_of(target: Target, router: Router | None) -> frozenset[Capability]:
    """Return what the target and router can do together, as created for this run."""
    found = target.capabilities()
    if router is not None and id(router) != id(target):
        found |= router.capabilities()
    return found


def other_slot(target: Target, slot: str | None) -> str:
    """Return the slot that is not ``slot``: the idle one when ``slot`` is active.

    With no active slot, the first slot is the idle one. Raises StepFailed when the
    target does not have exactly two slots.
    """
    slots = list(target.slots())
    if len(slots) != 2:
        raise StepFailed(
            f"the target has {len(slots)} slots ({', '.join(slots) or 'none'}); "
            "blue-green and canary deploys through a router need exactly two"
        )
    if slot is None:
        return slots[0]
    if slot not in slots:
        raise StepFailed(
            f"the router's active slot '{slot}' is not a slot of the target "
            f"({', '.join(slots)})"
        )
    return slots[1] if slot == slots[0] else slots[0]


def serving_instances(target: Target, router: Router | None) -> list[str]:
    """Return the instances that serve traffic now, in the target's order.

    For a target with slots that is the active slot's instances; without a known
    active slot, or without slots, all instances.
    """
    if target.slots() and router is not None:
        active = router.active_slot()
        if active is not None:
            return list(target.instances(active))
    return list(target.instances())


# -- deploys into the idle slot ----------------------------------------------------------


@dataclass
class SlotDeploy:
    """A deploy into the idle slot of a two-slot target, promoted by the router.

    Blue-green and canary (with a router) share it. The idle slot is the one that is
    not active, and it receives the new version while the active slot keeps serving.
    :meth:`undo` is the only rollback action of such a deploy. It puts traffic back on
    the slot that served before, first deploying that slot's previous version again if
    it was scaled down. Then it removes the new version from the idle slot.
    """

    rollout: Rollout
    router: Router
    #: The slot that served before the deploy; ``None`` if no slot did.
    active: str | None
    idle: str
    idle_instances: list[str]
    old_instances: list[str]
    #: A weight was sent to the idle slot and may still be in effect.
    weighted: bool = False
    #: Traffic was switched to the idle slot (the switch may have failed halfway).
    switched: bool = False

    @classmethod
    def prepare(cls, rollout: Rollout, router: Router) -> SlotDeploy:
        """Find the active and idle slots and record every instance of both.

        Raises StepFailed when the target does not have two slots or the idle slot has
        no instances.
        """
        target = rollout.target
        active = router.active_slot()
        idle = other_slot(target, active)
        idle_instances = list(target.instances(idle))
        if not idle_instances:
            raise StepFailed(f"slot '{idle}' has no instances to deploy {rollout.version} to")

        old_instances = list(target.instances(active)) if active is not None else []
        versions = run_parallel(old_instances, target.version, workers=MAX_PARALLEL)
        for instance, version in zip(old_instances, versions, strict=True):
            rollout.table.update(instance, slot=active, before=version, after=version,
                                 result="serving")
        rollout.table.update_all(idle_instances, slot=idle, result="not reached")
        rollout.data["slots"] = {"active": active, "idle": idle}
        return cls(rollout, router, active, idle, idle_instances, old_instances)

    @property
    def stable_version(self) -> str | None:
        """The version the active slot serves, as read before the deploy, or the fallback."""
        for state in self.rollout.table.rows():
            if state.slot == self.active and state.before:
                return state.before
        return self.rollout.fallback

    def deploy_idle(self, health: HealthPolicy) -> None:
        """Deploy the version to every idle instance in parallel and wait until each is
        healthy; raise StepFailed naming the first instance that failed."""
        rollout = self.rollout
        rollout.read_versions(self.idle_instances, workers=MAX_PARALLEL)
        rollout.deploy_instances(self.idle_instances, health, workers=MAX_PARALLEL,
                                 result="ready")
        rollout.check_cancelled(f"while deploying to slot '{self.idle}'")

        failed = [s for s in rollout.table.rows() if s.slot == self.idle and s.result != "ready"]
        if failed:
            first = failed[0]
            raise StepFailed(
                f"{len(failed)} of {len(self.idle_instances)} instances of slot '{self.idle}' "
                f"failed: {first.instance}: {first.message}"
            )

    def set_weight(self, weight: int) -> None:
        """Send ``weight`` percent of requests to the idle slot and record it."""
        self.weighted = True
        done = self._record("set_weight", {"slot": self.idle, "weight": weight,
                                           "active": self.active})
        self.rollout.route(f"setting the weight of slot '{self.idle}' to {weight}",
                           lambda: self.router.set_weight(self.idle, weight))
        done()
        self.rollout.record_weight(weight)

    def switch(self) -> None:
        """Make the idle slot the active one; its instances serve, the old ones go idle."""
        self.switched = True
        done = self._record("switch", {"slot": self.idle, "active": self.active})
        self.rollout.route(f"switching traffic to slot '{self.idle}'",
                           lambda: self.router.switch(self.idle))
        done()
        for instance in self.idle_instances:
            self.rollout.table.update(instance, result="serving")
        for instance in self.old_instances:
            self.rollout.table.update(instance, result="idle")

    def _record(self, operation: str, details: dict[str, str | int | None]) -> Callable[[], None]:
        """Journal a router change before it is made; ``active`` is the slot to route back to."""
        return self.rollout.context.record_change(
            self.rollout.step, operation, list(self.idle_instances), self.rollout.version,
            dict(details))

    def scale_down(self, delay: float) -> str:
        """Wait ``delay`` seconds, then remove the old version from the old slot.

        Returns a note for the step message when some instance kept its version, because
        the version is unknown or removing it failed. The deploy still counts as done,
        because the new version serves all traffic.
        """
        rollout = self.rollout
        if self.active is None or not self.old_instances:
            return ""
        rollout.sleep(delay, f"during scale_down_delay, before removing slot '{self.active}'")

        def remove(state: InstanceState) -> bool:
            if rollout.context.cancelled:
                return True
            version = state.before or rollout.fallback
            if version is None:
                rollout.table.update(state.instance, result="kept",
                                     message="not removed: its version is unknown")
                return False
            rollout.table.update(state.instance, touched=True)
            result = call_target("remove", state.instance, lambda: rollout.target.remove(
                state.instance, version, rollout.context.cancel))
            if result.ok:
                rollout.table.update(state.instance, after=None, result="removed")
            else:
                rollout.table.update(state.instance, result="kept",
                                     message=f"remove failed: {result.message}")
                rollout.table.add_output(state.instance, "remove", result.output)
            return result.ok

        old = [state for state in rollout.table.rows() if state.slot == self.active]
        removed = run_parallel(old, remove, workers=MAX_PARALLEL)
        rollout.check_cancelled(f"while removing slot '{self.active}'")
        kept = removed.count(False)
        if kept:
            logger.warning("step %s: %d instances of slot %s kept their version",
                           rollout.step.id, kept, self.active)
            return f"; {kept} of {len(old)} instances of slot '{self.active}' kept the old version"
        return ""

    def undo(self) -> str:
        """Roll back: traffic back to the old slot, then the new version off the idle slot.

        Raises RollbackFailed, with a table of what runs where, when traffic cannot be
        put back or the new version cannot be removed. The new version is not removed
        while traffic may still reach it, except when no slot served before the deploy:
        emptying the slot then restores that state.
        """
        done = []
        if self.switched:
            done.append(self._switch_back())
        elif self.weighted:
            self._route_back(f"setting the weight of slot '{self.idle}' back to 0",
                             lambda: self.router.set_weight(self.idle, 0))
            self.weighted = False
            self.rollout.record_weight(0, rollback=True)
            done.append(f"weight of slot '{self.idle}' back to 0")

        touched = [s.instance for s in self.rollout.table.rows()
                   if s.slot == self.idle and s.touched]
        if touched:
            version = self.rollout.version
            results = remove_version(self.rollout.target, touched, version,
                                     cancel=self.rollout.context.cancel)
            failure = removal_failure(self.rollout.target, results, version)
            if failure is not None:
                raise failure
            removed_from = plural(len(touched), "instance")
            done.append(f"removed {version} from {removed_from} of slot '{self.idle}'")
        return "; ".join(done) or "nothing to undo"

    def _switch_back(self) -> str:
        if self.active is None:
            self.switched = False
            return f"no slot served traffic before the deploy, so slot '{self.idle}' is emptied"

        restored = ""
        if any(s.touched for s in self.rollout.table.rows() if s.slot == self.active):
            old = [s for s in self.rollout.table.rows() if s.slot == self.active]
            restored = restore_previous(self.rollout.target, old, fallback=self.rollout.fallback,
                                        cancel=self.rollout.context.cancel)
        active = self.active
        self._route_back(f"switching traffic back to slot '{active}'",
                         lambda: self.router.switch(active))
        self.switched = False
        self.weighted = False
        if restored:
            return f"traffic back on slot '{active}' ({restored})"
        return f"traffic back on slot '{active}'"

    def _route_back(self, action: str, call: Callable[[], None]) -> None:
        try:
            call()
        except ShiplineError as exc:
            raise RollbackFailed(f"{action} failed: {exc}", self.slot_table()) from exc

    def slot_table(self) -> str:
        """Return a table of every instance of both slots: the version it runs now (read
        from the target) and whether its slot is the one the router marks active."""
        states = self.rollout.table.rows()
        running = run_parallel([s.instance for s in states], self.rollout.target.version,
                               workers=MAX_PARALLEL)
        try:
            active_now = self.router.active_slot()
        except ShiplineError:
            active_now = None
        rows = [
            [s.instance, s.slot or "-", show_version(now),
             "active" if s.slot is not None and s.slot == active_now else "-"]
            for s, now in zip(states, running, strict=True)
        ]
        return format_table(["instance", "slot", "running", "traffic"], rows)
