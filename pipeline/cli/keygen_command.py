"""``shipline keygen --output PREFIX``: create a minisign key pair."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode

logger = logging.getLogger("shipline")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keygen", parents=parents, help="create a key pair for signing packages",
        description="Write an Ed25519 key pair in the minisign formats: PREFIX.key (the "
        "secret key, protected with the password in SHIPLINE_KEY_PASSWORD) and PREFIX.pub. "
        "Existing files are never overwritten.",
    )
    parser.add_argument("--output", "-o", required=True, metavar="PREFIX",
                        help="path and name of the key files, without .key or .pub")
    parser.add_argument("--no-password", action="store_true",
                        help="store the secret key without a password (only for keys kept in "
                        "a secret store that protects them)")
    return parser


def main(config: Config) -> ExitCode:
    from pipeline.signing.keys import PASSWORD_VARIABLE, generate_key, write_key_pair

    password = None
    if not config.options.no_password:
        password = os.environ.get(PASSWORD_VARIABLE)
        if not password:
            raise UsageError(
                f"{PASSWORD_VARIABLE} is not set or empty; set it to the password for the "
                "new secret key, or pass --no-password"
            )

    key = generate_key()
    secret_path, public_path = write_key_pair(config.options.output, key, password)
    logger.info("created key pair %s", key.public_key.key_id_hex)
    if not config.options.quiet:
        protection = "without a password" if password is None else "password-protected"
        print(f"wrote {secret_path} (secret key, {protection}) and {public_path} "
              f"(public key, key id {key.public_key.key_id_hex})", file=config.stdout)
    return ExitCode.OK
