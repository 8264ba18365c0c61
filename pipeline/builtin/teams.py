"""The ``teams`` notifier: an Adaptive Card to a Microsoft Teams workflow webhook.

Options: ``url``, ``message`` for notify steps, and the HTTP options of
:mod:`pipeline.delivery` (``timeout``, ``retries``, ``ca_bundle``). ``url`` is the
webhook URL of a Power Automate workflow built from the template "Post to a channel
when a webhook request is received", and it is a secret.

The request body is a message whose ``attachments`` hold one Adaptive Card, version 1.4
(the schema at adaptivecards.io): a coloured headline, the message text, a FactSet with
the pipeline, stage, environment, version, outcome, duration, actor and extra facts,
and an ``Action.OpenUrl`` button to the CI job. Teams rejects messages larger than about
28 KB (Microsoft's "Limits and specifications for Microsoft Teams"), so texts are
shortened and, when the card is still too large, the message and then the facts are cut.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.builtin.notifyfacts import MESSAGE_PROPERTY, Summary, summarize, truncate
from pipeline.delivery import HTTP_OPTIONS_PROPERTIES, HttpOptions, send_json
from pipeline.notification import Delivery, Notification
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.context import RunContext

#: The ``uses`` value of this notifier.
NOTIFIER_TYPE = "teams"

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"
#: Teams renders Adaptive Cards up to version 1.5 (Microsoft's Copilot Studio guide to
#: Adaptive Cards). This card needs nothing newer than 1.0, so 1.4 leaves a margin.
CARD_VERSION = "1.4"

#: Bytes of the JSON body, kept below Teams' limit of about 28 KB with room for the
#: envelope that Power Automate adds when it posts the card.
MAX_PAYLOAD_BYTES = 24_000
MAX_HEADLINE = 200
MAX_MESSAGE = 8_000
MAX_FACTS = 30
MAX_FACT_NAME = 100
MAX_FACT_VALUE = 500
#: A longer CI job URL is left out instead of being cut into a broken link.
MAX_URL = 2_000

#: TextBlock colours per severity (see :data:`~pipeline.builtin.notifyfacts.EVENT_SEVERITIES`).
SEVERITY_COLORS = {
    "success": "Good",
    "failure": "Attention",
    "critical": "Attention",
    "warning": "Warning",
    "info": "Accent",
}

OPTIONS_SCHEMA: dict[str, Any] = {
    "properties": {
        "url": {
            "title": "Webhook URL",
            "description": "The URL of the Teams workflow's webhook trigger (\"When a "
            "Teams webhook request is received\"). It is a secret: pass it as "
            "${TEAMS_WEBHOOK_URL} and list the variable under secrets.",
            "type": "string",
            "pattern": "^(https?://|\\$\\{)",
        },
        "message": MESSAGE_PROPERTY,
        **HTTP_OPTIONS_PROPERTIES,
    },
    "required": ["url"],
}


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="notify", type=NOTIFIER_TYPE, schema=OPTIONS_SCHEMA,
        description="Post an Adaptive Card to a Microsoft Teams channel through a "
        "workflow webhook.",
    )]


@hookimpl
def shipline_notify(notification: Notification, context: RunContext) -> Delivery | None:
    if notification.uses != NOTIFIER_TYPE:
        return None

    url = str(notification.options.get("url") or "")
    if not url:
        return Delivery(NOTIFIER_TYPE, False, "option url is missing: set it to the Teams "
                        "workflow webhook URL")
    context.masker.add(url)

    payload = build_payload(summarize(notification, context.masker.mask))
    result = send_json("POST", url, payload, options=HttpOptions.from_options(
        notification.options), masker=context.masker.mask)
    return Delivery(NOTIFIER_TYPE, result.ok, result.message)


def build_payload(summary: Summary) -> dict[str, Any]:
    """Build the webhook's JSON body, at most :data:`MAX_PAYLOAD_BYTES` when encoded.

    Each try halves the room for the message, and once the message is gone drops the
    last fact, until the body fits. The headline, the first facts and the button stay.
    """
    message_room = MAX_MESSAGE
    fact_count = min(len(summary.facts), MAX_FACTS)
    payload = _message(summary, message_room, fact_count)

    while _encoded_size(payload) > MAX_PAYLOAD_BYTES and (message_room or fact_count):
        if message_room:
            message_room = message_room // 2 if message_room > 100 else 0
        else:
            fact_count -= 1
        payload = _message(summary, message_room, fact_count)

    return payload


def _message(summary: Summary, message_room: int, fact_count: int) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{
            "contentType": CARD_CONTENT_TYPE,
            "contentUrl": None,
            "content": _card(summary, message_room, fact_count),
        }],
    }


def _card(summary: Summary, message_room: int, fact_count: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [{
        "type": "TextBlock",
        "text": truncate(summary.headline, MAX_HEADLINE),
        "size": "Large",
        "weight": "Bolder",
        "color": SEVERITY_COLORS.get(summary.severity, SEVERITY_COLORS["info"]),
        "wrap": True,
    }]
    if summary.message.strip() and message_room:
        body.append({"type": "TextBlock", "text": truncate(summary.message, message_room),
                     "wrap": True})
    if fact_count:
        body.append({"type": "FactSet", "facts": [
            {"title": truncate(name, MAX_FACT_NAME), "value": truncate(value, MAX_FACT_VALUE)}
            for name, value in summary.facts[:fact_count]
        ]})

    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA_URL,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    if summary.job_url and len(summary.job_url) <= MAX_URL:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "View the CI job", "url": summary.job_url}
        ]
    return card


def _encoded_size(payload: dict[str, Any]) -> int:
    # The same encoding as pipeline.delivery.send_json: json.dumps with ASCII escapes.
    return len(json.dumps(payload).encode())
