"""The text that the Slack, Teams, GitHub and email notifiers build from a notification.

:func:`summarize` turns a :class:`~pipeline.notification.Notification` into a headline,
a severity for colours and icons, the message and an ordered list of facts (pipeline,
stage, environment, version, outcome, duration, actor and any extra facts). Every text
in a :class:`Summary` is masked, so a notifier can put it into a payload as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.durations import format_duration
from pipeline.notification import Notification

if TYPE_CHECKING:
    from pipeline.diagnostics import DocPath
    from pipeline.plan import Plan

#: Headline words per event. ``step`` is the event of a ``notify`` step.
EVENT_TITLES = {
    "started": "run started",
    "stage_succeeded": "stage succeeded",
    "stage_failed": "stage failed",
    "blocked": "blocked",
    "analysis_failed": "analysis failed",
    "rolled_back": "rolled back",
    "rollback_failed": "rollback failed",
    "succeeded": "run succeeded",
    "failed": "run failed",
    "paused": "waiting for approval",
    "step": "notice",
}

#: Severity per event: ``success``, ``failure``, ``critical`` (a person must look),
#: ``warning`` or ``info``. Events missing here are ``info``.
EVENT_SEVERITIES = {
    "stage_succeeded": "success",
    "succeeded": "success",
    "stage_failed": "failure",
    "analysis_failed": "failure",
    "rolled_back": "failure",
    "failed": "failure",
    "rollback_failed": "critical",
    "blocked": "warning",
    "paused": "warning",
}

#: JSON Schema of the ``message`` option, which every built-in notifier accepts.
MESSAGE_PROPERTY: dict[str, Any] = {
    "title": "Message",
    "description": "Text of the message that a notify step sends. Run events bring "
    "their own text, so a subscription under notifications does not need it.",
    "type": "string",
}

#: The text that ends a shortened text.
ELLIPSIS = "…"


@dataclass(frozen=True)
class Summary:
    """The facts a notifier shows about one notification, with every secret masked."""

    #: One line such as ``shop: rolled back in production``.
    headline: str
    #: One of the values of :data:`EVENT_SEVERITIES`, or ``info``.
    severity: str
    #: The notification's message; may be empty.
    message: str
    #: (name, value) pairs in display order; values are never empty.
    facts: tuple[tuple[str, str], ...]
    #: The CI job's web page, if the CI provides one.
    job_url: str | None


def summarize(notification: Notification, mask: Callable[[str], str]) -> Summary:
    """Build the :class:`Summary` of ``notification``, masking every text with ``mask``."""
    title = EVENT_TITLES.get(notification.event, notification.event.replace("_", " "))
    headline = f"{notification.pipeline}: {title}"
    if notification.environment:
        headline += f" in {notification.environment}"

    facts = tuple((name, mask(value)) for name, value in _fact_values(notification, title))
    job_url = mask(notification.job_url) if notification.job_url else None

    return Summary(
        headline=mask(headline),
        severity=EVENT_SEVERITIES.get(notification.event, "info"),
        message=mask(notification.message),
        facts=facts,
        job_url=job_url,
    )


def _fact_values(notification: Notification, title: str) -> list[tuple[str, str]]:
    """List the facts of ``notification`` that have a value, unmasked."""
    duration = notification.duration
    candidates: list[tuple[str, Any]] = [
        ("Pipeline", notification.pipeline),
        ("Stage", notification.stage),
        ("Environment", notification.environment),
        ("Version", notification.version),
        ("Outcome", notification.outcome or title),
        ("Duration", format_duration(duration) if math.isfinite(duration) and duration >= 0
         else None),
        ("Actor", notification.actor),
    ]
    for key, value in notification.facts.items():
        candidates.append((str(key).replace("_", " ").capitalize(), value))

    return [(name, str(value)) for name, value in candidates
            if value is not None and str(value) != ""]


def truncate(text: str, limit: int) -> str:
    """Shorten ``text`` to at most ``limit`` characters, ending it with :data:`ELLIPSIS`.

    Returns ``text`` unchanged when it fits. ``limit`` must be at least 1.
    """
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)] + ELLIPSIS


def notifier_uses(plan: Plan, uses: str) -> Iterator[tuple[DocPath, Mapping[str, Any]]]:
    """Yield the document path and options of every subscription and notify step that
    uses the notifier ``uses``, for checks at validate time."""
    for index, subscription in enumerate(plan.notifications):
        if subscription.get("uses") == uses:
            yield ("notifications", index), subscription
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind == "notify" and step.type == uses:
                yield (*step.path, "notify"), step.options
