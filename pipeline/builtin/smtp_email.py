"""The ``email`` notifier: a plain-text email sent over SMTP with STARTTLS.

Options: ``host``, ``port`` (default 587, the submission port), ``from``, ``to`` (a
list of addresses), ``subject`` (a template, see :data:`SUBJECT_FIELDS`), ``starttls``
(default true), ``username`` and ``password`` (both or neither), ``ca_bundle``,
``timeout`` and ``message`` for notify steps.

With ``starttls`` the client upgrades the connection with STARTTLS before it logs in or
sends anything. It verifies the server's certificate against ``ca_bundle`` or the
system trust store, and a server that does not offer STARTTLS fails the delivery. A login
without TLS is rejected before connecting, so a password never crosses the network in
clear text. Each delivery makes one attempt, because a retried SMTP transaction can
deliver the message twice; ``timeout`` applies to the connection and to each reply.

The email names pipeline, environment, version, outcome, duration and actor, and links
to the CI job. Its ``Message-ID`` is built from the notification's idempotency key, so
mail filters can drop a repeat, and ``Auto-Submitted: auto-generated`` (RFC 3834) keeps
vacation responders from replying.

``smtplib``, ``ssl`` and the ``email`` package are imported when an email is sent, so
loading the plugin stays cheap for commands that send nothing.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline import __version__, hookimpl
from pipeline.builtin.notifyfacts import (
    MESSAGE_PROPERTY,
    Summary,
    notifier_uses,
    summarize,
    truncate,
)
from pipeline.diagnostics import Diagnostic
from pipeline.notification import Delivery, Notification
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    import smtplib
    from email.headerregistry import Address
    from email.message import EmailMessage

    from pipeline.context import RunContext
    from pipeline.plan import Plan

logger = logging.getLogger("shipline")

#: The ``uses`` value of this notifier.
NOTIFIER_TYPE = "email"

DEFAULT_PORT = 587
DEFAULT_TIMEOUT = 10.0
DEFAULT_SUBJECT = "[shipline] {headline}"
#: Placeholders that ``subject`` may contain, each written as ``{name}``.
SUBJECT_FIELDS = ("headline", "pipeline", "event", "stage", "environment", "version",
                  "outcome")
MAX_SUBJECT = 200

_PLACEHOLDER = re.compile(r"\{([A-Za-z_]*)\}")
_MESSAGE_ID_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")

OPTIONS_SCHEMA: dict[str, Any] = {
    "properties": {
        "host": {
            "title": "SMTP host",
            "description": "Host name or IP address of the SMTP server. With STARTTLS its "
            "certificate must be valid for this name.",
            "type": "string",
            "minLength": 1,
        },
        "port": {
            "title": "SMTP port",
            "description": "TCP port of the SMTP server; 587 is the submission port.",
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "default": DEFAULT_PORT,
        },
        "from": {
            "title": "From",
            "description": "Sender address, such as deploy@example.com or "
            "\"Deploys <deploy@example.com>\".",
            "type": "string",
            "minLength": 3,
        },
        "to": {
            "title": "To",
            "description": "Recipient addresses.",
            "type": "array",
            "items": {"type": "string", "minLength": 3},
            "minItems": 1,
        },
        "subject": {
            "title": "Subject",
            "description": "Subject template. {headline}, {pipeline}, {event}, {stage}, "
            "{environment}, {version} and {outcome} are replaced by the notification's "
            "values.",
            "type": "string",
            "minLength": 1,
            "default": DEFAULT_SUBJECT,
        },
        "starttls": {
            "title": "STARTTLS",
            "description": "Upgrade the connection with STARTTLS and verify the server's "
            "certificate before sending. Turn it off only for a relay on the same host; "
            "a login then is rejected.",
            "type": "boolean",
            "default": True,
        },
        "username": {
            "title": "Username",
            "description": "User name for SMTP login; needs password and STARTTLS.",
            "type": "string",
            "minLength": 1,
        },
        "password": {
            "title": "Password",
            "description": "Password for SMTP login, a secret: pass it as "
            "${SMTP_PASSWORD}. It is masked everywhere.",
            "type": "string",
            "minLength": 1,
        },
        "ca_bundle": {
            "title": "CA bundle",
            "description": "Path of a PEM file with the certificate authorities that sign "
            "the server's certificate; without it the system trust store is used.",
            "type": "string",
            "minLength": 1,
        },
        "timeout": {
            "title": "Timeout",
            "description": "Seconds to wait for the connection and for each reply of the "
            "server (default 10).",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 300,
        },
        "message": MESSAGE_PROPERTY,
    },
    "required": ["host", "from", "to"],
}


class EmailError(Exception):
    """A delivery problem, in a message that is safe to show once masked."""


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server and log in."""

    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None
    ca_bundle: str | None
    timeout: float

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SmtpSettings:
        """Read validated options; raise :class:`EmailError` for a login without TLS."""
        username = str(options["username"]) if options.get("username") else None
        password = str(options["password"]) if options.get("password") else None
        starttls = bool(options.get("starttls", True))
        if (username is None) != (password is None):
            raise EmailError("username and password must be set together")
        if username is not None and not starttls:
            raise EmailError("SMTP login without TLS is not allowed: set starttls to true, "
                             "or remove username and password")

        return cls(
            host=str(options.get("host") or ""),
            port=int(options.get("port", DEFAULT_PORT)),
            starttls=starttls,
            username=username,
            password=password,
            ca_bundle=str(options["ca_bundle"]) if options.get("ca_bundle") else None,
            timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
        )


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="notify", type=NOTIFIER_TYPE, schema=OPTIONS_SCHEMA,
        description="Send a plain-text email over SMTP with STARTTLS.",
    )]


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Reject option combinations that could only fail when the mail is sent."""
    found = []
    for path, options in notifier_uses(plan, NOTIFIER_TYPE):
        try:
            SmtpSettings.from_options(options)
        except EmailError as exc:
            found.append(Diagnostic(str(exc), None, path))
    return found


@hookimpl
def shipline_notify(notification: Notification, context: RunContext) -> Delivery | None:
    if notification.uses != NOTIFIER_TYPE:
        return None

    mask = context.masker.mask
    password = notification.options.get("password")
    if password:
        context.masker.add(str(password))

    try:
        settings = SmtpSettings.from_options(notification.options)
        message = build_message(notification, mask)
        send(message, settings)
    except EmailError as error:
        logger.debug("email for event %s via %s not sent: %s", notification.event,
                     notification.options.get("host"), mask(str(error)))
        return Delivery(NOTIFIER_TYPE, False, mask(str(error)))

    recipients = ", ".join(str(address) for address in notification.options["to"])
    return Delivery(NOTIFIER_TYPE, True, mask(
        f"sent to {recipients} via {settings.host}:{settings.port}"))


def build_message(notification: Notification, mask: Callable[[str], str]) -> EmailMessage:
    """Build the email; raise :class:`EmailError` for an invalid address or subject."""
    import email.utils
    from email.message import EmailMessage

    options = notification.options
    summary = summarize(notification, mask)
    sender = _address(str(options.get("from") or ""), "from")
    recipients = [_address(str(item), "to") for item in options.get("to") or ()]
    if not recipients:
        raise EmailError("option to is empty: list at least one recipient address")

    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipients
    message["Subject"] = render_subject(str(options.get("subject") or DEFAULT_SUBJECT),
                                        notification, mask)
    message["Date"] = email.utils.formatdate(notification.time or None)
    message["Message-ID"] = _message_id(notification.idempotency_key, sender.domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Shipline-Event"] = notification.event
    message.set_content(_body(summary))
    return message


def render_subject(template: str, notification: Notification,
                   mask: Callable[[str], str]) -> str:
    """Fill ``{name}`` placeholders of ``template``; raise :class:`EmailError` for others.

    Values are masked and missing ones become empty. Line breaks become spaces, because
    a header cannot contain them, and the result is shortened to :data:`MAX_SUBJECT`
    characters.
    """
    summary = summarize(notification, mask)
    values = {
        "headline": summary.headline,
        "pipeline": mask(notification.pipeline),
        "event": notification.event,
        "stage": mask(notification.stage or ""),
        "environment": mask(notification.environment or ""),
        "version": mask(notification.version or ""),
        "outcome": dict(summary.facts).get("Outcome", ""),
    }
    unknown = [name for name in _PLACEHOLDER.findall(template) if name not in values]
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in SUBJECT_FIELDS)
        raise EmailError(f"subject has an unknown placeholder {{{unknown[0]}}}; use {known}")

    # The template itself may hold an interpolated secret, not only the values.
    subject = mask(_PLACEHOLDER.sub(lambda match: values[match.group(1)], template))
    return truncate(" ".join(subject.split()), MAX_SUBJECT)


def _body(summary: Summary) -> str:
    lines = [summary.headline, ""]
    if summary.message.strip():
        lines += [summary.message.strip(), ""]
    width = max((len(name) for name, _ in summary.facts), default=0)
    lines += [f"{name + ':':<{width + 1}} {value}" for name, value in summary.facts]
    if summary.job_url:
        lines += ["", f"CI job: {summary.job_url}"]
    lines += ["", "-- ", f"Sent by shipline {__version__}"]
    return "\n".join(lines) + "\n"


def _address(text: str, option: str) -> Address:
    """Parse one address such as ``Deploys <deploy@example.com>``."""
    import email.utils
    from email.headerregistry import Address

    name, addr_spec = email.utils.parseaddr(text)
    if "@" not in addr_spec or any(char in text for char in "\r\n"):
        raise EmailError(f"option {option} has an invalid address '{text}'; use "
                         "name@example.com")
    try:
        return Address(display_name=name, addr_spec=addr_spec)
    except (ValueError, IndexError) as error:
        raise EmailError(f"option {option} has an invalid address '{text}': {error}") from None


def _message_id(idempotency_key: str, domain: str) -> str:
    import email.utils

    if idempotency_key and _MESSAGE_ID_SAFE.match(idempotency_key):
        return f"<{idempotency_key}@{domain}>"
    return email.utils.make_msgid(domain=domain)


def send(message: EmailMessage, settings: SmtpSettings) -> None:
    """Send ``message`` in one SMTP session; raise :class:`EmailError` on any failure.

    Every recipient must be accepted: a partial refusal is an error that names the
    refused addresses, although the others got the message.
    """
    import smtplib

    if settings.ca_bundle is not None and not os.path.isfile(settings.ca_bundle):
        raise EmailError(f"CA bundle {settings.ca_bundle} not found; set ca_bundle to a "
                         "readable PEM file")

    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            _start_session(smtp, settings, where)
            refused = smtp.send_message(message)
    except smtplib.SMTPException as error:
        raise EmailError(f"SMTP server {where} failed: {_describe_smtp(error, settings)}"
                         ) from None
    except OSError as error:
        raise EmailError(f"SMTP server {where} failed: {_describe_os(error, settings)}"
                         ) from None

    if refused:
        details = "; ".join(f"{address} ({code} {_text(reply)})"
                            for address, (code, reply) in refused.items())
        raise EmailError(f"SMTP server {where} rejected some recipients: {details}")


def _start_session(smtp: smtplib.SMTP, settings: SmtpSettings, where: str) -> None:
    """Greet, upgrade to TLS when asked, and log in when credentials are set."""
    import ssl

    smtp.ehlo()
    if settings.starttls:
        if not smtp.has_extn("starttls"):
            raise EmailError(f"SMTP server {where} does not offer STARTTLS; use a server "
                             "that does, or set starttls to false for a relay on the "
                             "same host")
        context = ssl.create_default_context(cafile=settings.ca_bundle)
        smtp.starttls(context=context)
        smtp.ehlo()

    if settings.username is not None and settings.password is not None:
        smtp.login(settings.username, settings.password)


def _describe_smtp(error: smtplib.SMTPException, settings: SmtpSettings) -> str:
    import smtplib

    # smtplib turns a timeout while it waits for a reply into SMTPServerDisconnected.
    if isinstance(error, smtplib.SMTPServerDisconnected) and isinstance(
            error.__context__, TimeoutError):
        return f"timed out after {settings.timeout:g} s"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "every recipient was refused: " + "; ".join(
            f"{address} ({code} {_text(reply)})"
            for address, (code, reply) in error.recipients.items())
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"login failed: {error.smtp_code} {_text(error.smtp_error)}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return str(error) or type(error).__name__


def _describe_os(error: OSError, settings: SmtpSettings) -> str:
    import ssl

    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS verification failed: {error.verify_message}"
    if isinstance(error, TimeoutError):
        return f"timed out after {settings.timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return error.strerror or str(error) or type(error).__name__


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())
