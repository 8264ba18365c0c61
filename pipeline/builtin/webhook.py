"""The ``webhook`` notifier: a signed JSON POST that any receiver can verify and de-duplicate.

Options: ``url``, ``secret`` (the HMAC key shared with the receiver), optional ``headers``
to add, ``message`` for notify steps, and the HTTP options of :mod:`pipeline.delivery`
(``timeout``, ``retries``, ``ca_bundle``).

The body is described by ``schemas/webhook.schema.json``. The signature and idempotency
headers, and how a receiver checks them, are described in :mod:`pipeline.webhooksig`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pipeline import __version__, hookimpl
from pipeline.builtin.notifyfacts import MESSAGE_PROPERTY
from pipeline.delivery import HTTP_OPTIONS_PROPERTIES, HttpOptions, send_json
from pipeline.notification import Delivery, Notification
from pipeline.schema import StepSchema
from pipeline.webhooksig import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    from pipeline.context import RunContext

#: The ``uses`` value of this notifier.
NOTIFIER_TYPE = "webhook"
#: The ``schema_version`` of the body; see ``schemas/webhook.schema.json``.
SCHEMA_VERSION = 1
#: Headers the notifier sets itself; ``headers`` in the options cannot replace them.
OWN_HEADERS = frozenset({SIGNATURE_HEADER.lower(), IDEMPOTENCY_HEADER.lower(),
                         "content-type", "x-shipline-event"})

OPTIONS_SCHEMA: dict[str, Any] = {
    "properties": {
        "url": {
            "title": "Webhook URL",
            "description": "The http or https URL that receives the POST.",
            "type": "string",
            "pattern": "^(https?://|\\$\\{)",
        },
        "secret": {
            "title": "Signing secret",
            "description": "Key of the HMAC-SHA256 signature in the X-Shipline-Signature "
                           "header, shared with the receiver. Give it as a variable listed "
                           "under secrets, so it is masked.",
            "type": "string",
            "minLength": 1,
        },
        "headers": {
            "title": "Extra headers",
            "description": "More request headers by name, for example an Authorization "
                           "header. They cannot replace Content-Type, X-Shipline-Event, "
                           "X-Shipline-Signature or Idempotency-Key.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "message": MESSAGE_PROPERTY,
        **HTTP_OPTIONS_PROPERTIES,
    },
    "required": ["url", "secret"],
}


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="notify", type=NOTIFIER_TYPE, schema=OPTIONS_SCHEMA,
        description="POST a signed JSON description of the event to a URL.",
    )]


@hookimpl
def shipline_notify(notification: Notification, context: RunContext) -> Delivery | None:
    if notification.uses != NOTIFIER_TYPE:
        return None

    options = notification.options
    mask = context.masker.mask
    body = encode_body(build_body(notification, mask))
    headers = request_headers(notification, body, str(options["secret"]),
                              options.get("headers") or {})
    result = send_json("POST", str(options["url"]), body, headers=headers,
                       options=HttpOptions.from_options(options), masker=mask)
    return Delivery(NOTIFIER_TYPE, result.ok, result.message)


def build_body(notification: Notification, mask: Callable[[str], str]) -> dict[str, Any]:
    """Return the JSON body for ``notification`` with every text masked by ``mask``."""
    event_time = notification.time or time.time()
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": notification.idempotency_key,
        "event": notification.event,
        "time": rfc3339(event_time),
        "pipeline": notification.pipeline,
        "stage": notification.stage,
        "environment": notification.environment,
        "version": notification.version,
        "outcome": notification.outcome,
        "duration": _seconds(notification.duration),
        "message": notification.message,
        "actor": notification.actor,
        "job_url": notification.job_url,
        "required": notification.required,
        "facts": {str(key): _scalar(value) for key, value in notification.facts.items()},
    }
    return _mask_texts(body, mask)


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Serialise ``body`` to the exact bytes that are signed and sent: compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def request_headers(notification: Notification, body: bytes, secret: str,
                    extra: Mapping[str, Any], now: float | None = None) -> dict[str, str]:
    """Return the headers of the POST: ``extra`` first, then the signature and the key."""
    timestamp = int(time.time() if now is None else now)
    headers = {str(name): str(value) for name, value in extra.items()
               if str(name).lower() not in OWN_HEADERS}
    headers.update({
        "User-Agent": f"shipline/{__version__}",
        "X-Shipline-Event": notification.event,
        IDEMPOTENCY_HEADER: notification.idempotency_key,
        SIGNATURE_HEADER: sign(secret, body, timestamp),
    })
    return headers


def rfc3339(unix_time: float) -> str:
    """Format Unix time as RFC 3339 in UTC with milliseconds: ``2027-01-15T08:00:00.000Z``."""
    moment = datetime.fromtimestamp(unix_time, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _seconds(value: float) -> float:
    return round(value, 3) if math.isfinite(value) and value > 0 else 0.0


def _scalar(value: Any) -> str | int | float | bool | None:
    """Keep JSON scalars, so the facts match the schema; anything else becomes its text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _mask_texts(body: dict[str, Any], mask: Callable[[str], str]) -> dict[str, Any]:
    def masked(value: Any) -> Any:
        if isinstance(value, str):
            return mask(value)
        if isinstance(value, dict):
            return {mask(key): masked(item) for key, item in value.items()}
        return value

    return {key: masked(value) for key, value in body.items()}
