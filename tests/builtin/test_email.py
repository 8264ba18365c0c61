from __future__ import annotations

import argparse
import email
import email.policy
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from pipeline import __version__
from pipeline.builtin import smtp_email
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.masking import Masker
from pipeline.notification import Delivery, Notification
from pipeline.plan import Plan
from pipeline.plugins import PluginRegistry

USERNAME = "deploy"
PASSWORD = "correct-horse-battery"


@dataclass
class Received:
    """One message the test server accepted, and how the session that sent it looked."""

    envelope: Envelope
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.envelope.original_content or b"",
                                          policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message and rejects listed recipients."""

    received: list[Received] = field(default_factory=list)
    unknown_recipients: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.unknown_recipients:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(Received(envelope, session.ssl is not None,
                                      bool(session.authenticated)))
        return "250 Message accepted for delivery"


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
    valid = (isinstance(auth_data, LoginPassword)
             and auth_data.login == USERNAME.encode()
             and auth_data.password == PASSWORD.encode())
    return AuthResult(success=valid, handled=False)


@dataclass
class SmtpServer:
    """A running aiosmtpd server on 127.0.0.1 and the PEM file of the CA that signed it."""

    inbox: Inbox
    port: int
    ca_bundle: str


def free_port() -> int:
    # NOTE: aiosmtpd's Controller needs a fixed port to check that it started, so the
    # port is picked here. Another process could take it in between, which is rare.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, str(ca_file)


def start_server(authority: tuple[trustme.CA, str], *, tls: bool = True,
                 **smtp_parameters: Any) -> Iterator[SmtpServer]:
    ca, ca_file = authority
    inbox = Inbox()
    tls_context = None
    if tls:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(tls_context)
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(),
                            server_hostname="smtp.test", tls_context=tls_context,
                            **smtp_parameters)
    controller.start()
    try:
        yield SmtpServer(inbox, controller.port, ca_file)
    finally:
        controller.stop()


@pytest.fixture
def server(authority: tuple[trustme.CA, str]) -> Iterator[SmtpServer]:
    """A server that requires STARTTLS and a login."""
    yield from start_server(authority, require_starttls=True, authenticator=authenticate,
                            auth_required=True)


@pytest.fixture
def plain_server(authority: tuple[trustme.CA, str]) -> Iterator[SmtpServer]:
    """A server without TLS or login, like a relay on the same host."""
    yield from start_server(authority, tls=False)


def make_context(tmp_path: Path, masker: Masker | None = None) -> RunContext:
    plan = Plan(
        name="shop", file=tmp_path / "shipline.yml", stages=(),
        environments=MappingProxyType({}), analyses=MappingProxyType({}), notifications=(),
        state=MappingProxyType({}),
    )
    config = Config(options=argparse.Namespace(), registry=PluginRegistry(),
                    masker=masker or Masker())
    return RunContext(plan=plan, config=config)


def email_options(server: SmtpServer, **options: Any) -> dict[str, Any]:
    values = {"host": "127.0.0.1", "port": server.port, "from": "Deploys <deploy@example.com>",
              "to": ["ops@example.com", "dev@example.com"], "username": USERNAME,
              "password": PASSWORD, "ca_bundle": server.ca_bundle, "timeout": 5}
    values.update(options)
    return values


def make_notification(options: Mapping[str, Any], **fields: Any) -> Notification:
    values: dict[str, Any] = {
        "event": "rolled_back", "uses": "email", "options": options, "pipeline": "shop",
        "message": "error rate 7% > 1%", "stage": "production", "environment": "production",
        "version": "1.4.2", "outcome": "rolled back", "duration": 95.0, "actor": "octocat",
        "job_url": "https://github.com/octo/shop/actions/runs/42",
        "idempotency_key": "run-42.rolled_back.0", "time": 1_700_000_000.0,
    }
    values.update(fields)
    return Notification(**values)


def send(tmp_path: Path, options: Mapping[str, Any], masker: Masker | None = None,
         **fields: Any) -> Delivery:
    delivery = smtp_email.shipline_notify(make_notification(options, **fields),
                                          make_context(tmp_path, masker))
    assert delivery is not None
    return delivery


def test_email_notify_ignores_other_notifiers(tmp_path: Path) -> None:
    notification = make_notification({"host": "127.0.0.1"}, uses="slack")

    assert smtp_email.shipline_notify(notification, make_context(tmp_path)) is None


def test_email_sent_over_starttls_with_login(tmp_path: Path, server: SmtpServer) -> None:
    delivery = send(tmp_path, email_options(server))

    assert delivery.uses == "email"
    assert delivery.ok
    assert delivery.message == (
        f"sent to ops@example.com, dev@example.com via 127.0.0.1:{server.port}"
    )
    (received,) = server.inbox.received
    assert received.tls
    assert received.authenticated
    assert received.envelope.mail_from == "deploy@example.com"
    assert received.envelope.rcpt_tos == ["ops@example.com", "dev@example.com"]


def test_email_headers_and_body(tmp_path: Path, server: SmtpServer) -> None:
    send(tmp_path, email_options(server))

    message = server.inbox.received[0].message
    assert message["From"] == "Deploys <deploy@example.com>"
    assert message["To"] == "ops@example.com, dev@example.com"
    assert message["Subject"] == "[shipline] shop: rolled back in production"
    assert message["Message-ID"] == "<run-42.rolled_back.0@example.com>"
    assert message["Date"] == "Tue, 14 Nov 2023 22:13:20 -0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Shipline-Event"] == "rolled_back"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == (
        "shop: rolled back in production\n"
        "\n"
        "error rate 7% > 1%\n"
        "\n"
        "Pipeline:    shop\n"
        "Stage:       production\n"
        "Environment: production\n"
        "Version:     1.4.2\n"
        "Outcome:     rolled back\n"
        "Duration:    1m35s\n"
        "Actor:       octocat\n"
        "\n"
        "CI job: https://github.com/octo/shop/actions/runs/42\n"
        "\n"
        "-- \n"
        f"Sent by shipline {__version__}\n"
    )


def test_email_subject_template(tmp_path: Path, server: SmtpServer) -> None:
    options = email_options(server, subject="{pipeline} {version}: {outcome} ({event}, "
                                            "{environment}, {stage})")

    send(tmp_path, options)

    assert server.inbox.received[0].message["Subject"] == (
        "shop 1.4.2: rolled back (rolled_back, production, production)"
    )


def test_email_subject_unknown_placeholder(tmp_path: Path, server: SmtpServer) -> None:
    delivery = send(tmp_path, email_options(server, subject="{pipeline} {branch}"))

    assert not delivery.ok
    assert delivery.message == (
        "subject has an unknown placeholder {branch}; use {headline}, {pipeline}, {event}, "
        "{stage}, {environment}, {version}, {outcome}"
    )
    assert server.inbox.received == []


def test_email_subject_one_line_and_masked(tmp_path: Path, server: SmtpServer) -> None:
    masker = Masker(["v-s3cr3t"])

    send(tmp_path, email_options(server, subject="{version}\r\nBcc: x@example.com"),
         masker, version="v-s3cr3t")

    assert server.inbox.received[0].message["Subject"] == "*** Bcc: x@example.com"
    assert server.inbox.received[0].message["Bcc"] is None


def test_email_body_masks_secrets(tmp_path: Path, server: SmtpServer) -> None:
    masker = Masker(["s3cr3t-value"])

    send(tmp_path, email_options(server), masker, message="token s3cr3t-value leaked")

    content = server.inbox.received[0].envelope.original_content or b""
    assert b"s3cr3t-value" not in content
    assert "token *** leaked" in server.inbox.received[0].message.get_content()


def test_email_message_id_without_safe_key(tmp_path: Path, server: SmtpServer) -> None:
    send(tmp_path, email_options(server), idempotency_key="a b<c>")

    message_id = server.inbox.received[0].message["Message-ID"]
    assert message_id.endswith("@example.com>")
    assert "a b" not in message_id


def test_email_rejected_without_starttls(tmp_path: Path, server: SmtpServer) -> None:
    options = email_options(server, starttls=False)
    del options["username"], options["password"]

    delivery = send(tmp_path, options)

    assert not delivery.ok
    assert delivery.message == (
        f"SMTP server 127.0.0.1:{server.port} failed: 530 Must issue a STARTTLS command first"
    )
    assert server.inbox.received == []


def test_email_fails_when_server_lacks_starttls(tmp_path: Path,
                                                plain_server: SmtpServer) -> None:
    options = email_options(plain_server)
    del options["username"], options["password"]

    delivery = send(tmp_path, options)

    assert not delivery.ok
    assert delivery.message == (
        f"SMTP server 127.0.0.1:{plain_server.port} does not offer STARTTLS; use a server "
        "that does, or set starttls to false for a relay on the same host"
    )
    assert plain_server.inbox.received == []


def test_email_plain_relay_when_starttls_off(tmp_path: Path, plain_server: SmtpServer) -> None:
    options = email_options(plain_server, starttls=False)
    del options["username"], options["password"]

    delivery = send(tmp_path, options)

    assert delivery.ok
    (received,) = plain_server.inbox.received
    assert not received.tls


def test_email_login_without_tls_rejected(tmp_path: Path, plain_server: SmtpServer) -> None:
    delivery = send(tmp_path, email_options(plain_server, starttls=False))

    assert not delivery.ok
    assert delivery.message == (
        "SMTP login without TLS is not allowed: set starttls to true, or remove username "
        "and password"
    )
    assert plain_server.inbox.received == []


def test_email_username_needs_password(tmp_path: Path, server: SmtpServer) -> None:
    options = email_options(server)
    del options["password"]

    delivery = send(tmp_path, options)

    assert not delivery.ok
    assert delivery.message == "username and password must be set together"


def test_email_wrong_password(tmp_path: Path, server: SmtpServer) -> None:
    masker = Masker()

    delivery = send(tmp_path, email_options(server, password="wrong-password"), masker)

    assert not delivery.ok
    assert delivery.message == (
        f"SMTP server 127.0.0.1:{server.port} failed: login failed: "
        "535 5.7.8 Authentication credentials invalid"
    )
    assert masker.mask("wrong-password") == "***"
    assert server.inbox.received == []


def test_email_untrusted_certificate(tmp_path: Path, server: SmtpServer) -> None:
    options = email_options(server)
    del options["ca_bundle"]

    delivery = send(tmp_path, options)

    assert not delivery.ok
    assert delivery.message.startswith(
        f"SMTP server 127.0.0.1:{server.port} failed: TLS verification failed: "
    )
    assert server.inbox.received == []


def test_email_missing_ca_bundle(tmp_path: Path, server: SmtpServer) -> None:
    missing = tmp_path / "missing.pem"

    delivery = send(tmp_path, email_options(server, ca_bundle=str(missing)))

    assert not delivery.ok
    assert delivery.message == (
        f"CA bundle {missing} not found; set ca_bundle to a readable PEM file"
    )


def test_email_some_recipients_refused(tmp_path: Path, server: SmtpServer) -> None:
    server.inbox.unknown_recipients.add("dev@example.com")

    delivery = send(tmp_path, email_options(server))

    assert not delivery.ok
    assert delivery.message == (
        f"SMTP server 127.0.0.1:{server.port} rejected some recipients: "
        "dev@example.com (550 5.1.1 no such user)"
    )
    assert server.inbox.received[0].envelope.rcpt_tos == ["ops@example.com"]


def test_email_every_recipient_refused(tmp_path: Path, server: SmtpServer) -> None:
    server.inbox.unknown_recipients.update({"ops@example.com", "dev@example.com"})

    delivery = send(tmp_path, email_options(server))

    assert not delivery.ok
    assert delivery.message == (
        f"SMTP server 127.0.0.1:{server.port} failed: every recipient was refused: "
        "ops@example.com (550 5.1.1 no such user); dev@example.com (550 5.1.1 no such user)"
    )


def test_email_connection_refused(tmp_path: Path) -> None:
    port = free_port()

    delivery = send(tmp_path, {"host": "127.0.0.1", "port": port, "from": "d@example.com",
                               "to": ["ops@example.com"]})

    assert not delivery.ok
    assert delivery.message == f"SMTP server 127.0.0.1:{port} failed: connection refused"


def test_email_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        delivery = send(tmp_path, {"host": "127.0.0.1", "port": port, "timeout": 0.2,
                                   "from": "d@example.com", "to": ["ops@example.com"]})

    assert not delivery.ok
    assert delivery.message == f"SMTP server 127.0.0.1:{port} failed: timed out after 0.2 s"


@pytest.mark.parametrize(("options", "message"), [
    ({"from": "not an address"},
     "option from has an invalid address 'not an address'; use name@example.com"),
    ({"to": ["ops@example.com", "nobody"]},
     "option to has an invalid address 'nobody'; use name@example.com"),
    ({"to": []}, "option to is empty: list at least one recipient address"),
])
def test_email_invalid_addresses(tmp_path: Path, server: SmtpServer,
                                 options: dict[str, Any], message: str) -> None:
    delivery = send(tmp_path, email_options(server, **options))

    assert not delivery.ok
    assert delivery.message == message


def test_email_schema_documents_every_property() -> None:
    (fragment,) = smtp_email.shipline_step_schemas()

    assert fragment.kind == "notify"
    assert fragment.type == "email"
    for name, prop in fragment.schema["properties"].items():
        assert "title" in prop, name
        assert "description" in prop, name


def test_email_schema_checks_options() -> None:
    (fragment,) = smtp_email.shipline_step_schemas()
    validator = jsonschema.Draft202012Validator({"type": "object", **fragment.schema})

    assert validator.is_valid({"host": "smtp.example.com", "from": "d@example.com",
                               "to": ["ops@example.com"], "port": 587})
    assert not validator.is_valid({"host": "smtp.example.com", "from": "d@example.com"})
    assert not validator.is_valid({"host": "smtp.example.com", "from": "d@example.com",
                                   "to": ["ops@example.com"], "port": 0})


def test_email_subject_template_text_masked(tmp_path: Path, server: SmtpServer) -> None:
    masker = Masker(["pw-s3cr3t"])

    send(tmp_path, email_options(server, subject="x pw-s3cr3t {event}"), masker)

    assert server.inbox.received[0].message["Subject"].startswith("x *** ")


def test_email_login_without_tls_invalid_at_validate(shipline_cli, write_pipeline,
                                                     tmp_path: Path) -> None:
    write_pipeline("""\
        version: 1
        name: shop
        notifications:
          - {uses: email, host: 127.0.0.1, from: a@example.com, to: [b@example.com],
             username: ci, password: "${SMTP_PASSWORD}", starttls: false, on: [failed]}
        stages: [{name: check, steps: [{gate: {uses: command, command: "true"}}]}]
        """)
    result = shipline_cli("validate", cwd=tmp_path, env={"SMTP_PASSWORD": "pw-s3cr3t"})
    assert result.exit_code == 2
    assert result.stderr == (
        "shipline.yml:4:5: notifications[0]: SMTP login without TLS is not allowed: set "
        "starttls to true, or remove username and password\n"
    )
