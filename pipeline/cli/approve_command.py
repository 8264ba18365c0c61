"""``shipline approve``: sign an approval document, or create an approver's key pair.

``shipline approve --generate-key alice`` writes ``alice.key`` (the private key, mode
0600) and ``alice.pub`` (the public key, for the pipeline's ``signed.keys``).
``shipline approve --key alice.key --approver alice --pipeline shop --environment
production --version 1.4.2 --expires 4h`` prints a signed approval document, or writes
it to ``--output``. The format is described in :mod:`pipeline.signedapproval`.
"""

from __future__ import annotations

import argparse
import os
from datetime import timezone
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.durations import parse_duration
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode

#: Validity of an approval when ``--expires`` is not given, in seconds (one day).
DEFAULT_EXPIRY = 86400.0

__all__ = ["add_parser", "main"]

_REQUIRED = ("key", "approver", "pipeline", "environment", "version")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "approve", parents=parents, help="sign an approval, or create an approver's keys",
        description="Sign an approval document for one pipeline, environment and version "
        "with an approver's Ed25519 key, for a gate or pause with 'signed' approvals. "
        "With --generate-key, create the approver's key pair instead.",
    )
    parser.add_argument("--generate-key", metavar="NAME",
                        help="write NAME.key (private, mode 0600) and NAME.pub (public) "
                        "to --output-dir and exit")
    parser.add_argument("--output-dir", metavar="DIR", type=Path, default=Path("."),
                        help="folder for --generate-key (default: the current folder)")
    parser.add_argument("--key", metavar="PATH", type=Path,
                        help="the approver's private key (PEM)")
    parser.add_argument("--passphrase-env", metavar="VAR",
                        help="environment variable that contains the key's passphrase, "
                        "if the key is encrypted")
    parser.add_argument("--approver", metavar="NAME", help="approver name, as in 'keys'")
    parser.add_argument("--pipeline", metavar="NAME", help="pipeline name ('name:')")
    parser.add_argument("--environment", metavar="NAME", help="environment to approve")
    parser.add_argument("--version", metavar="VERSION", help="version to approve")
    parser.add_argument("--expires", metavar="WHEN", default=None,
                        help="a duration from now (30m, 4h) or an ISO 8601 date-time with a "
                        "time zone (default 24h)")
    parser.add_argument("-o", "--output", metavar="FILE", type=Path,
                        help="write the document to FILE instead of standard output")
    return parser


def main(config: Config) -> ExitCode:
    options = config.options
    if options.generate_key:
        return _generate_key(options.generate_key, options.output_dir, config)

    missing = [f"--{name}" for name in _REQUIRED if getattr(options, name) is None]
    if missing:
        raise UsageError(f"approve: missing {', '.join(missing)} (or use --generate-key)")

    from pipeline.signedapproval import load_private_key, sign_approval

    key = load_private_key(options.key, _passphrase(options.passphrase_env, config),
                           config.masker)
    approval = sign_approval(
        key, pipeline=options.pipeline, environment=options.environment,
        version=options.version, approver=options.approver,
        expires=_expiry(options.expires, config.clock.time()),
    )

    if options.output is None:
        print(approval.to_json(), file=config.stdout)
        return ExitCode.OK
    try:
        options.output.write_text(approval.to_json() + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {options.output}: {exc.strerror}") from exc
    print(f"approval by {options.approver} written to {options.output}", file=config.stdout)
    return ExitCode.OK


def _passphrase(variable: str | None, config: Config) -> bytes | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise UsageError(f"approve: --passphrase-env {variable} is not set")
    config.masker.add(value)
    return value.encode()


def _expiry(text: str | None, now: float) -> str:
    """Return the expiry as ISO 8601 UTC; raise UsageError for an invalid value."""
    from pipeline.signedapproval import now_text, parse_expiry

    if text is None:
        return now_text(now + DEFAULT_EXPIRY)
    try:
        return now_text(now + parse_duration(text))
    except ValueError:
        pass
    try:
        moment = parse_expiry(text)
    except ValueError as exc:
        raise UsageError(f"approve: --expires: {exc}, or a duration such as 4h") from exc
    if moment.timestamp() <= now:
        raise UsageError(f"approve: --expires {text} is in the past")
    return f"{moment.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def _generate_key(name: str, directory: Path, config: Config) -> ExitCode:
    """Write a new Ed25519 key pair; raise UsageError rather than overwrite a file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = directory / f"{name}.key"
    public_path = directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"approve: {path} already exists; remove it or pick another name")

    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    try:
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(private_pem)
        public_path.write_bytes(public_pem)
    except OSError as exc:
        raise UsageError(f"cannot write the key pair in {directory}: {exc.strerror}") from exc

    print(f"wrote {private_path} (keep it secret) and {public_path} (add it to 'keys')",
          file=config.stdout)
    return ExitCode.OK

