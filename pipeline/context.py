"""The run state a step works with: the plan, its stage, targets, and how to roll back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.cancel import CancelEvent
from pipeline.errors import ShiplineError

if TYPE_CHECKING:
    from pathlib import Path

    from pipeline.clock import Clock
    from pipeline.config import Config
    from pipeline.masking import Masker
    from pipeline.plan import Environment, Plan, Stage, Step
    from pipeline.staterun import RunState
    from pipeline.target import Router, Target

logger = logging.getLogger("shipline")


class Interrupted(ShiplineError):
    """Raised inside a step when the run was interrupted or the step timed out."""


class RollbackFailed(Exception):
    """Raised by a rollback action that could not restore the previous state.

    ``details`` lists which instance runs which version, for the person who must look.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass
class Rollback:
    """How to undo one change. ``action`` returns a one-line summary of what it restored
    and raises :class:`RollbackFailed` (or any exception) when it could not."""

    step: Step
    description: str
    action: Callable[[], str]


@dataclass
class RunContext:
    """Shared by every hook of one run; the runner sets ``stage`` and ``environment``."""

    plan: Plan = field(repr=False)
    config: Config = field(repr=False)
    stage: Stage | None = field(default=None, repr=False)
    environment: Environment | None = field(default=None, repr=False)
    #: Set when the run is interrupted or the current step times out. Steps that wait
    #: must use :meth:`sleep` or check this event, and stop soon after it is set.
    cancel: threading.Event = field(default_factory=CancelEvent)
    #: Environments in which a deploy step has started; a failed gate before any of
    #: them is reported as BLOCKED rather than FAILED.
    changed_environments: set[str] = field(default_factory=set)
    #: Values for CI outputs (``deployed-version``, ``rolled-back``...).
    outputs: dict[str, str] = field(default_factory=dict)
    #: The version the latest deploy step deploys, whether it succeeded or not, for
    #: messages about a failure or a rollback.
    version: str | None = None
    #: Packages that ``package`` gates unpacked in this run, oldest first: the version
    #: each was checked for and its folder, which deploy commands get as ``{package}``.
    packages: list[tuple[str, Path]] = field(default_factory=list)
    #: Set by the runner: queues the ``paused`` notification. See :meth:`notify_paused`.
    on_paused: Callable[[str], None] | None = field(default=None, repr=False)
    #: The state store of the run (locks, history, journal), or ``None`` without one.
    state: RunState | None = field(default=None, repr=False)
    _rollbacks: list[Rollback] = field(default_factory=list, repr=False)
    _targets: dict[str, Target] = field(default_factory=dict, repr=False)
    #: The error of a target whose creation failed, by environment: not retried in a run.
    _target_errors: dict[str, ShiplineError] = field(default_factory=dict, repr=False)
    _routers: dict[str, Router | None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Held while a target or router is created, so that each is created once even when
    #: several threads ask for it. Reentrant, because creating a router may need the target.
    _create_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def clock(self) -> Clock:
        return self.config.clock

    @property
    def masker(self) -> Masker:
        return self.config.masker

    @property
    def hook(self) -> Any:
        return self.config.hook

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`Interrupted` if the run was interrupted or the step timed out."""
        if self.cancel.is_set():
            raise Interrupted("interrupted")

    def sleep(self, seconds: float) -> bool:
        """Wait on the run's clock; return ``False`` if cancelled before the end."""
        return self.clock.sleep(seconds, self.cancel)

    def progress(self, message: str) -> None:
        """Tell the user what a running step is waiting for: one line in the terminal and
        the log. For waits and phases that take long enough to look like a hang."""
        logger.info("%s", message)
        self.hook.shipline_step_progress(message=self.masker.mask(message), context=self)

    def notify_paused(self, message: str) -> None:
        """Send the ``paused`` run event, for a step that starts waiting for a person.

        Returns at once: the notification is queued. Does nothing outside a runner.
        """
        if self.on_paused is not None:
            self.on_paused(message)

    def record_change(
        self,
        step: Step,
        operation: str,
        instances: Sequence[str],
        version: str | None,
        details: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> Callable[[], None]:
        """Write a journal entry for a change ``step`` is about to make to ``instances``.

        Call it before the change and call the returned function once the change has
        finished, so that a later run can tell which instances a killed run touched.
        Without a state store, or outside a deploy step, nothing is written. Raises
        StateError (a ShiplineError) when the journal cannot be written.
        """
        if self.state is None:
            return _nothing
        return self.state.record_change(step, operation, instances, version, details)

    def record_changes(
        self,
        step: Step,
        operation: str,
        version: str | None,
        changes: Sequence[tuple[Sequence[str], Mapping[str, str | int | float | bool | None]]],
    ) -> Callable[[], None]:
        """Write one journal entry per ``(instances, details)`` pair of ``changes``, all
        in one transaction, for one change of ``operation`` that ``step`` is about to make.

        As :meth:`record_change`, whose entries cost one commit each; the returned
        function marks every entry done.
        """
        if self.state is None:
            return _nothing
        return self.state.record_changes(step, operation, version, changes)

    def add_rollback(self, step: Step, description: str, action: Callable[[], str]) -> None:
        """Record how to undo a change that ``step`` just made.

        Rollbacks run newest first when the stage fails or the run is interrupted.
        """
        with self._lock:
            self._rollbacks.append(Rollback(step, description, action))

    def take_rollbacks(self, step: Step | None = None) -> list[Rollback]:
        """Remove and return the pending rollbacks of ``step`` (or all), newest first."""
        with self._lock:
            taken = [r for r in self._rollbacks if step is None or r.step is step]
            self._rollbacks = [r for r in self._rollbacks if r not in taken]
        return list(reversed(taken))

    def target(self, environment: Environment | None = None) -> Target:
        """Return the target of ``environment`` (default: the stage's), creating it once."""
        with self._create_lock:
            return self._target(self._require_environment(environment))

    def _target(self, env: Environment) -> Target:
        with self._lock:
            if env.name in self._targets:
                return self._targets[env.name]
            failed = self._target_errors.get(env.name)
        if failed is not None:
            # Creating it again would repeat what the failed attempt did (start processes,
            # list instances) and its warnings, and fail the same way.
            raise failed
        try:
            target = self.hook.shipline_make_target(environment=env, context=self)
        except ShiplineError as exc:
            with self._lock:
                self._target_errors[env.name] = exc
            raise
        if target is None:
            raise ShiplineError(
                f"environment '{env.name}': no plugin provides target type "
                f"'{env.target.get('type')}'"
            )
        with self._lock:
            self._targets[env.name] = target
        return target  # type: ignore[no-any-return]

    def router(self, environment: Environment | None = None) -> Router | None:
        """Return the router of ``environment``, or ``None`` if it has none."""
        with self._create_lock:
            return self._router(self._require_environment(environment))

    def _router(self, env: Environment) -> Router | None:
        with self._lock:
            if env.name in self._routers:
                return self._routers[env.name]
        router = None
        if env.router is not None:
            router = self.hook.shipline_make_router(environment=env, context=self)
            if router is None:
                raise ShiplineError(
                    f"environment '{env.name}': no plugin provides router type "
                    f"'{env.router.get('type')}'"
                )
        with self._lock:
            self._routers[env.name] = router
        return router

    def close_targets(self) -> None:
        """Close every router and target created in this run; errors are logged."""
        with self._lock:
            resources: list[Any] = [r for r in self._routers.values() if r is not None]
            resources += list(self._targets.values())
            self._routers.clear()
            self._targets.clear()
        for resource in resources:
            try:
                resource.close()
            except Exception:
                logger.exception("closing %r failed", resource)

    def _require_environment(self, environment: Environment | None) -> Environment:
        env = environment or self.environment
        if env is None:
            stage = self.stage.name if self.stage else "?"
            raise ShiplineError(f"stage '{stage}' has no 'environment:' to deploy to")
        return env


def _nothing() -> None:
    return None
