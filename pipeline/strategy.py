"""The interface of deployment strategies (rolling, blue-green, canary and plugins')."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Step
    from pipeline.report import StepReport
    from pipeline.target import Capability


class Strategy(Protocol):
    """Decides the order and pacing of a deploy using only target and router primitives."""

    def requires(self) -> frozenset[Capability]:
        """Return the capabilities the environment must offer (checked at validate time)."""
        ...

    def run(self, step: Step, context: RunContext) -> StepReport:
        """Deploy, registering rollbacks with ``context.add_rollback`` as changes happen."""
        ...
