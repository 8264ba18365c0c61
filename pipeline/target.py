"""The primitives every strategy is written against: targets and routers.

A target runs versions on instances. A router, where one exists, shifts traffic
between versions. Strategies use nothing else, so each strategy works with every
target that has the capabilities it needs.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Capability(str, enum.Enum):
    """Optional abilities a strategy may require of a target or router."""

    #: Traffic can be split between two versions by weight (canary).
    WEIGHTS = "weights"
    #: Two slots can run side by side and traffic switches between them (blue-green).
    SLOTS = "slots"


@dataclass(frozen=True)
class InstanceResult:
    """The result of one primitive operation on one instance.

    ``output`` is captured command output, already bounded; ``duration`` is in seconds.
    """

    instance: str
    ok: bool
    message: str = ""
    output: str = ""
    duration: float = 0.0


@runtime_checkable
class Target(Protocol):
    """The place where versions run. Methods may be called from several threads at once."""

    def capabilities(self) -> frozenset[Capability]:
        """Return what this target can do besides deploying to instances."""
        ...

    def slots(self) -> Sequence[str]:
        """Return the slot names (``("blue", "green")``), or ``()`` for a target without slots."""
        ...

    def instances(self, slot: str | None = None) -> Sequence[str]:
        """Return the instance names: all of them, or those of ``slot``."""
        ...

    def deploy(
        self, instance: str, version: str, cancel: threading.Event
    ) -> InstanceResult:
        """Make ``instance`` run ``version``; stop early if ``cancel`` is set."""
        ...

    def health(self, instance: str, cancel: threading.Event) -> InstanceResult:
        """Check that ``instance`` serves; one attempt, retries are the caller's."""
        ...

    def version(self, instance: str) -> str | None:
        """Return the version ``instance`` runs now, or ``None`` if it cannot be read."""
        ...

    def remove(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        """Stop running ``version`` on ``instance`` (used to discard a canary)."""
        ...

    def close(self) -> None:
        """Release what the target holds; called once when the run ends."""
        ...


@runtime_checkable
class AddressedTarget(Protocol):
    """A target that tells where each instance serves, for routers outside shipline.

    Optional: a router such as nginx that proxies to instances directly asks the target
    for addresses when it has no other source for them.
    """

    def address(self, instance: str) -> str | None:
        """Return the ``host:port`` that ``instance`` serves on now, or ``None`` if none."""
        ...


@runtime_checkable
class Router(Protocol):
    """Shifts traffic between the slots of a target.

    The active slot serves the stable version. A canary runs in another slot and
    receives a weighted share; switching makes a slot the active one.
    """

    def capabilities(self) -> frozenset[Capability]: ...

    def active_slot(self) -> str | None:
        """Return the slot that serves all traffic not sent elsewhere by a weight."""
        ...

    def set_weight(self, slot: str, weight: int) -> None:
        """Send ``weight`` percent (0-100) of requests to ``slot``, the rest to the active slot."""
        ...

    def switch(self, slot: str) -> None:
        """Send all traffic to ``slot`` and make it the active slot; clears any weight."""
        ...

    def endpoint(self) -> str | None:
        """Return the URL that clients use, for probe traffic; ``None`` if unknown."""
        ...

    def close(self) -> None: ...
