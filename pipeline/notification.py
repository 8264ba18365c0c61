"""Notifications: what happened in a run, addressed to one notifier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Events a subscription under ``notifications:`` can ask for.
EVENTS = (
    "started",
    "stage_succeeded",
    "stage_failed",
    "blocked",
    "analysis_failed",
    "rolled_back",
    "rollback_failed",
    "succeeded",
    "failed",
    "paused",
)


@dataclass(frozen=True)
class Notification:
    """One message to send: the event, the notifier that sends it, and the facts.

    ``uses`` selects the notifier; ``options`` are the subscription's or notify step's
    options (URLs, channels), already interpolated. ``message`` is masked.
    """

    event: str
    uses: str
    options: Mapping[str, Any]
    pipeline: str
    message: str
    stage: str | None = None
    environment: str | None = None
    version: str | None = None
    outcome: str | None = None
    #: Seconds since the run started.
    duration: float = 0.0
    required: bool = False
    #: Who started the run and where to see its CI job, from the CI's variables.
    actor: str | None = None
    job_url: str | None = None
    #: Unique per notification and subscription, so receivers can drop repeats.
    idempotency_key: str = ""
    #: Unix time the event happened.
    time: float = 0.0
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """The result of sending one notification."""

    uses: str
    ok: bool
    message: str = ""
