"""``shipline encrypt FILE --recipient KEY -o OUT``: write an age-encrypted copy."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "encrypt", parents=parents, help="encrypt a file in the age format",
        description="Encrypt FILE to age recipients' public keys, or to the passphrase in "
        "SHIPLINE_AGE_PASSPHRASE with --passphrase. The age tool decrypts the result. The "
        "file is streamed, so its size does not matter.",
    )
    parser.add_argument("file", metavar="FILE", help="the file to encrypt")
    parser.add_argument("--recipient", "-r", action="append", default=[], metavar="KEY",
                        help="an age public key (age1...) or SSH public key; repeat for several")
    parser.add_argument("--passphrase", action="store_true",
                        help="encrypt to the passphrase in SHIPLINE_AGE_PASSPHRASE instead")
    parser.add_argument("--output", "-o", required=True, metavar="OUT",
                        help="the encrypted file to write")
    return parser


def main(config: Config) -> ExitCode:
    from pipeline.encryption.files import PASSPHRASE_VARIABLE, encrypt_file

    options = config.options
    if options.passphrase and options.recipient:
        raise UsageError("give --recipient or --passphrase, not both")
    if not options.passphrase and not options.recipient:
        raise UsageError("give at least one --recipient, or --passphrase")

    passphrase = None
    if options.passphrase:
        passphrase = os.environ.get(PASSPHRASE_VARIABLE)
        if not passphrase:
            raise UsageError(
                f"--passphrase: {PASSPHRASE_VARIABLE} is not set or empty; set it to the "
                "passphrase"
            )
        config.masker.add(passphrase)

    output = Path(options.output)
    encrypt_file(Path(options.file), output, recipients=options.recipient,
                 passphrase=passphrase)
    if not options.quiet:
        print(f"wrote {output}", file=config.stdout)
    return ExitCode.OK
