"""``shipline sign FILE --key PREFIX.key``: write ``FILE.minisig``."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode

logger = logging.getLogger("shipline")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sign", parents=parents, help="sign a file with a minisign secret key",
        description="Write FILE.minisig, a prehashed Ed25519 signature in the minisign "
        "format. A password-protected key is opened with the password in "
        "SHIPLINE_KEY_PASSWORD.",
    )
    parser.add_argument("file", metavar="FILE", help="the file to sign")
    parser.add_argument("--key", "-k", required=True, metavar="PREFIX.key",
                        help="the secret key file")
    parser.add_argument("--comment", "-t", metavar="TEXT",
                        help="the trusted comment, one line covered by the signature "
                        "(default: timestamp and file name, as minisign writes)")
    parser.add_argument("--signature", "-x", metavar="PATH",
                        help="where to write the signature (default: FILE.minisig)")
    return parser


def main(config: Config) -> ExitCode:
    from pipeline.secretsources import register_key_content
    from pipeline.signing.keys import PASSWORD_VARIABLE, parse_secret_key, read_key_text
    from pipeline.signing.signatures import default_trusted_comment, sign_file

    options = config.options
    path = Path(options.file)
    if not path.is_file():
        raise UsageError(f"{path}: file to sign not found")

    text = read_key_text(options.key, "secret key file")
    register_key_content(config.masker, text)
    key = parse_secret_key(text, options.key, os.environ.get(PASSWORD_VARIABLE) or None)
    comment = options.comment if options.comment is not None else default_trusted_comment(path)
    signature_text = sign_file(path, key, comment)

    signature_path = Path(options.signature or f"{path}.minisig")
    try:
        signature_path.write_text(signature_text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{signature_path}: cannot write the signature: {exc.strerror}") from exc

    logger.info("signed %s with key %s", path, key.public_key.key_id_hex)
    if not config.options.quiet:
        print(f"wrote {signature_path} (key id {key.public_key.key_id_hex})", file=config.stdout)
    return ExitCode.OK
