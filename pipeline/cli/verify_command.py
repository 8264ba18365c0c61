"""``shipline verify FILE --pubkey PREFIX.pub``: check a minisign signature.

Exit 0 when the signature verifies, 3 (blocked) when it does not, 2 when an argument
or a file is invalid.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode

logger = logging.getLogger("shipline")


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify", parents=parents, help="verify a file's minisign signature",
        description="Verify FILE against its minisign signature (FILE.minisig by default) "
        "and print the trusted comment. Exit 0 when it verifies, 3 when it does not.",
    )
    parser.add_argument("file", metavar="FILE", help="the signed file")
    parser.add_argument("--pubkey", required=True, action="append", metavar="PREFIX.pub",
                        help="a trusted public key file; repeat for several keys")
    parser.add_argument("--signature", "-x", metavar="PATH",
                        help="the signature file (default: FILE.minisig)")
    return parser


def main(config: Config) -> ExitCode:
    from pipeline.signing.keys import parse_public_key, read_key_text
    from pipeline.signing.signatures import parse_signature, verify_file

    options = config.options
    path = Path(options.file)
    if not path.is_file():
        raise UsageError(f"{path}: file to verify not found")

    keys = [
        parse_public_key(read_key_text(name, "public key file"), name) for name in options.pubkey
    ]
    signature_path = options.signature or f"{path}.minisig"
    signature = parse_signature(read_key_text(signature_path, "signature file"), signature_path)
    key = verify_file(path, signature, keys, signature_path)

    logger.info("verified %s with key %s", path, key.key_id_hex)
    if not config.options.quiet:
        print(f"{path}: signature verified with key {key.key_id_hex}", file=config.stdout)
        print(f"trusted comment: {signature.trusted_comment}", file=config.stdout)
    return ExitCode.OK
