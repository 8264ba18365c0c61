"""``shipline approve``: sign an approval document with an approver's minisign key.

``shipline approve --key alice.key --approver alice --pipeline shop --environment
production --version 1.4.2 --expires 4h`` prints the document followed by its
signature, the form an environment variable takes. With ``-o approval.json`` it writes
the document to ``approval.json`` and the signature to ``approval.json.minisig``.
Approvers create their key pair with ``shipline keygen``. The format is described in
:mod:`pipeline.approvaldocument`.
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Config
from pipeline.durations import parse_duration
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode

if TYPE_CHECKING:
    from pipeline.signing.keys import SecretKey

#: Validity of an approval when ``--expires`` is not given, in seconds (one day).
DEFAULT_EXPIRY = 86400.0

__all__ = ["add_parser", "main"]

logger = logging.getLogger("shipline")

_REQUIRED = ("key", "approver", "pipeline", "environment", "version")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "approve", parents=parents, help="sign an approval with an approver's key",
        description="Sign an approval document for one pipeline, environment and version "
        "with an approver's minisign secret key (from 'shipline keygen'), for a gate or "
        "pause with 'signed' approvals. A password-protected key is opened with the "
        "password in SHIPLINE_KEY_PASSWORD.",
    )
    # Kept only to point users of the former PEM key pairs to 'shipline keygen'.
    parser.add_argument("--generate-key", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--key", metavar="PATH", type=Path,
                        help="the approver's minisign secret key file")
    parser.add_argument("--approver", metavar="NAME",
                        help="approver name, as in 'keys' or 'keys_env'")
    parser.add_argument("--pipeline", metavar="NAME", help="pipeline name ('name:')")
    parser.add_argument("--environment", metavar="NAME", help="environment to approve")
    parser.add_argument("--version", metavar="VERSION", help="version to approve")
    parser.add_argument("--expires", metavar="WHEN", default=None,
                        help="a duration from now (30m, 4h) or an ISO 8601 date-time with a "
                        "time zone (default 24h)")
    parser.add_argument("-o", "--output", metavar="FILE", type=Path,
                        help="write the document to FILE and its signature to FILE.minisig "
                        "instead of printing both")
    return parser


def main(config: Config) -> ExitCode:
    from pipeline.approvaldocument import Approval, sign_approval

    options = config.options
    if options.generate_key:
        raise UsageError(f"approve: --generate-key was removed; create the key pair with "
                         f"'shipline keygen --output {options.generate_key}'")
    missing = [f"--{name}" for name in _REQUIRED if getattr(options, name) is None]
    if missing:
        raise UsageError(f"approve: missing {', '.join(missing)}")

    key = _secret_key(options.key, config)
    now = config.clock.time()
    approval = Approval(
        pipeline=options.pipeline, environment=options.environment, version=options.version,
        approver=options.approver, expires=_expiry(options.expires, now),
    )
    document, signature = sign_approval(approval, key, now)
    logger.info("signed the approval of %s for %s %s with key %s", options.approver,
                options.environment, options.version, key.public_key.key_id_hex)

    if options.output is None:
        print(document + signature, end="", file=config.stdout)
        return ExitCode.OK
    signature_path = options.output.with_name(options.output.name + ".minisig")
    for path, text in ((options.output, document), (signature_path, signature)):
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    print(f"approval by {options.approver} written to {options.output} and {signature_path}",
          file=config.stdout)
    return ExitCode.OK


def _secret_key(path: Path, config: Config) -> SecretKey:
    """Read the minisign secret key, masking its lines; KeyFileError (exit 2) if invalid."""
    from pipeline.secretsources import register_key_content
    from pipeline.signing.keys import PASSWORD_VARIABLE, parse_secret_key, read_key_text

    text = read_key_text(str(path), "secret key file")
    register_key_content(config.masker, text)
    return parse_secret_key(text, str(path), os.environ.get(PASSWORD_VARIABLE) or None)


def _expiry(text: str | None, now: float) -> str:
    """Return the expiry as ISO 8601 UTC; raise UsageError for an invalid value."""
    from pipeline.approvaldocument import now_text, parse_expiry

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
