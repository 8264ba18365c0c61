"""``shipline decrypt FILE --identity FILE -o OUT``: decrypt an age file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode
from pipeline.masking import Masker
from pipeline.secretsources import register_key_content


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "decrypt", parents=parents, help="decrypt an age file",
        description="Decrypt an age file with an identity file (--identity, or its text in "
        "SHIPLINE_AGE_IDENTITY), or, for a file encrypted to a passphrase, with the "
        "passphrase in SHIPLINE_AGE_PASSPHRASE. OUT is written only when decryption "
        "succeeds, with mode 0600.",
    )
    parser.add_argument("file", metavar="FILE", help="the age file to decrypt")
    parser.add_argument("--identity", "-i", action="append", default=[], metavar="IDENTITY_FILE",
                        help="an age identity file, as age-keygen writes it; repeat for several")
    parser.add_argument("--output", "-o", required=True, metavar="OUT",
                        help="the decrypted file to write")
    return parser


def main(config: Config) -> ExitCode:
    from pipeline.encryption.files import (
        IDENTITY_VARIABLE,
        PASSPHRASE_VARIABLE,
        decrypt_file,
        parse_identities,
    )

    options = config.options
    identities = []
    for name in options.identity:
        identities += parse_identities(_read_identity_file(name, config.masker), name)
    if not identities and os.environ.get(IDENTITY_VARIABLE):
        register_key_content(config.masker, os.environ[IDENTITY_VARIABLE])
        identities = parse_identities(os.environ[IDENTITY_VARIABLE], IDENTITY_VARIABLE)

    passphrase = os.environ.get(PASSPHRASE_VARIABLE) or None
    if passphrase is not None:
        config.masker.add(passphrase)
    output = Path(options.output)
    decrypt_file(Path(options.file), output, identities=identities, passphrase=passphrase)
    if not options.quiet:
        print(f"wrote {output}", file=config.stdout)
    return ExitCode.OK


def _read_identity_file(name: str, masker: Masker) -> str:
    """Read an identity file and register its key lines with ``masker`` first."""
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{name}: identity file not found") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read the identity file: {exc.strerror}") from None

    register_key_content(masker, data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not an age identity file (not UTF-8 text)") from None
