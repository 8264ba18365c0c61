"""The ``slack`` notifier: a Block Kit message to a Slack incoming webhook.

Options: ``url`` (the incoming webhook URL, a secret), ``message`` for notify steps, and
the HTTP options of :mod:`pipeline.delivery` (``timeout``, ``retries``, ``ca_bundle``).

The message starts with a header block with an emoji for the outcome and a section
with the message text. Sections of fields follow with the facts (pipeline, stage,
environment, version, outcome, duration, actor and extra facts), and a context block
links to the CI job. The top-level ``text`` repeats the headline for notifications and clients
that cannot show blocks. Block Kit itself has no colours, so the emoji shows the outcome.

Texts are shortened to Slack's documented Block Kit limits (docs.slack.dev, "Blocks"
reference): header text 150 characters, section text 3000, at most 10 fields of 2000
characters per section, at most 10 elements per context block and 50 blocks per message.
Slack rejects a message that breaks one of them with HTTP 400 ``invalid_blocks``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.builtin.notifyfacts import (
    ELLIPSIS,
    MESSAGE_PROPERTY,
    Summary,
    summarize,
    truncate,
)
from pipeline.delivery import HTTP_OPTIONS_PROPERTIES, HttpOptions, send_json
from pipeline.notification import Delivery, Notification
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.context import RunContext

#: The ``uses`` value of this notifier.
NOTIFIER_TYPE = "slack"

MAX_BLOCKS = 50
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
#: The top-level ``text`` has a limit of its own (40,000 characters); a notification
#: fallback longer than a section would not be read anyway.
MAX_FALLBACK_TEXT = 3000

#: Emoji short codes per severity (see :data:`~pipeline.builtin.notifyfacts.EVENT_SEVERITIES`).
SEVERITY_EMOJI = {
    "success": ":white_check_mark:",
    "failure": ":x:",
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "properties": {
        "url": {
            "title": "Webhook URL",
            "description": "The Slack incoming webhook URL. It is a secret: pass it as "
            "${SLACK_WEBHOOK_URL} and list the variable under secrets.",
            "type": "string",
            "pattern": "^(https?://|\\$\\{)",
        },
        "message": MESSAGE_PROPERTY,
        **HTTP_OPTIONS_PROPERTIES,
    },
    "required": ["url"],
}

# Characters that Slack's mrkdwn reads as markup; Slack documents these three escapes.
_MRKDWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="notify", type=NOTIFIER_TYPE, schema=OPTIONS_SCHEMA,
        description="Post a Block Kit message to a Slack incoming webhook.",
    )]


@hookimpl
def shipline_notify(notification: Notification, context: RunContext) -> Delivery | None:
    if notification.uses != NOTIFIER_TYPE:
        return None

    url = str(notification.options.get("url") or "")
    if not url:
        return Delivery(NOTIFIER_TYPE, False, "option url is missing: set it to the Slack "
                        "incoming webhook URL")
    context.masker.add(url)

    payload = build_payload(summarize(notification, context.masker.mask))
    result = send_json("POST", url, payload, options=HttpOptions.from_options(
        notification.options), masker=context.masker.mask)
    return Delivery(NOTIFIER_TYPE, result.ok, result.message)


def build_payload(summary: Summary) -> dict[str, Any]:
    """Build the webhook's JSON body: ``text`` plus ``blocks``, within Slack's limits."""
    emoji = SEVERITY_EMOJI.get(summary.severity, SEVERITY_EMOJI["info"])
    blocks: list[dict[str, Any]] = [{
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(f"{emoji} {summary.headline}",
                                                         MAX_HEADER_TEXT), "emoji": True},
    }]
    if summary.message.strip():
        blocks.append(_section(summary.message))

    link = _job_link(summary.job_url) if summary.job_url else None
    closing = [link] if link else []
    room = MAX_BLOCKS - len(blocks) - len(closing)
    blocks.extend(_fact_sections(summary.facts)[:room])
    blocks.extend(closing)

    fallback = f"{emoji} {summary.headline}"
    # The default message repeats the headline, so it is added only when it adds information.
    if summary.message.strip() and summary.message.strip() not in summary.headline:
        fallback += f": {summary.message}"
    return {"text": escape_mrkdwn(fallback, MAX_FALLBACK_TEXT), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section",
            "text": {"type": "mrkdwn", "text": escape_mrkdwn(text, MAX_SECTION_TEXT)}}


def _fact_sections(facts: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Split the facts into sections of at most :data:`MAX_FIELDS` fields each."""
    fields = [
        {"type": "mrkdwn",
         "text": escape_mrkdwn(f"*{name}*\n{value}", MAX_FIELD_TEXT)}
        for name, value in facts
    ]
    return [{"type": "section", "fields": fields[start:start + MAX_FIELDS]}
            for start in range(0, len(fields), MAX_FIELDS)]


def _job_link(job_url: str) -> dict[str, Any] | None:
    """Build the context block that links to the CI job, or None for a too long URL.

    Slack's link syntax ``<url|label>`` ends at ``|`` or ``>``, so those are
    percent-encoded, and ``&`` is escaped as everywhere else in mrkdwn. A URL that does
    not fit into one text object is left out rather than cut into a broken link.
    """
    safe_url = (job_url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E")
                .replace("|", "%7C"))
    link = f"<{safe_url}|View the CI job>"
    if len(link) > MAX_SECTION_TEXT:
        return None
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": link}]}


def escape_mrkdwn(text: str, limit: int) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack's mrkdwn and shorten to ``limit`` characters.

    A shortened text never ends inside an escape such as ``&amp;``.
    """
    escaped = "".join(_MRKDWN_ESCAPES.get(char, char) for char in text)
    if len(escaped) <= limit:
        return escaped

    cut = _PARTIAL_ENTITY.sub("", escaped[: limit - len(ELLIPSIS)])
    return cut + ELLIPSIS
