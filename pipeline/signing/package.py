"""The checks that decide whether a package file may be deployed.

:func:`check_package` runs them in order: the minisign signature with a trusted key
(which covers the trusted comment), then the expected SHA-256 digest and the version
named in the trusted comment. A failed signature stops at once, because nothing else
about the file can be trusted. The digest and version checks both run, so that one
message lists every failure.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.signing import KeyFileError, VerificationError
from pipeline.signing.keys import PublicKey, parse_public_key, parse_public_keys, read_key_text
from pipeline.signing.signatures import parse_signature, verify_file

_CHUNK_SIZE = 1 << 20


@dataclass(frozen=True)
class PackageCheck:
    """The checks a package must pass; with ``version`` None the comment is not checked."""

    file: Path
    signature: Path
    trusted_keys: tuple[PublicKey, ...]
    sha256: str | None = None
    version: str | None = None


def check_package(check: PackageCheck) -> list[str]:
    """Run every check and return one line per check that passed, for reports.

    Raises :class:`VerificationError` (exit 3) whose message starts with the name of
    each failed check. A missing or malformed signature file fails the signature check.
    """
    if not check.file.is_file():
        raise VerificationError(f"package check failed: {check.file}: file not found")

    try:
        signature_text = read_key_text(str(check.signature), "signature file")
        signature = parse_signature(signature_text, str(check.signature))
        key = verify_file(check.file, signature, check.trusted_keys, str(check.signature))
    except (KeyFileError, VerificationError) as exc:
        raise VerificationError(f"signature check failed: {exc}") from None

    passed = [
        f"signature: verified with key {key.key_id_hex}",
        f"trusted comment: {signature.trusted_comment}",
    ]
    failures = []
    if check.sha256 is not None:
        actual = file_sha256(check.file)
        if actual == check.sha256.lower():
            passed.append(f"sha256: {actual}")
        else:
            failures.append(
                f"sha256 check failed: {check.file} has sha256 {actual}, expected "
                f"{check.sha256.lower()}"
            )
    if check.version is not None:
        if comment_names_version(signature.trusted_comment, check.version):
            passed.append(f"version: {check.version} is named in the trusted comment")
        else:
            failures.append(
                f"version check failed: the trusted comment '{signature.trusted_comment}' "
                f"does not name version {check.version}; sign with a trusted comment that "
                f"contains 'version:{check.version}'"
            )
    if failures:
        raise VerificationError("\n".join(failures))
    return passed


def comment_names_version(comment: str, version: str) -> bool:
    """Tell whether a whitespace-separated field of ``comment`` is ``version`` itself
    or ends with ``:version`` (``version:1.4.2``, ``tag:1.4.2``).

    Whole fields are compared, so ``1.4`` does not match ``1.4.2`` and a file name
    such as ``file:app-1.4.2.tar`` names no version.
    """
    for field in re.split(r"\s+", comment.strip()):
        if field == version or field.endswith(f":{version}"):
            return True
    return False


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def load_trusted_keys(
    files: Sequence[Path], variable: str | None, environ: Mapping[str, str] = os.environ
) -> tuple[PublicKey, ...]:
    """Read the trusted public keys from key files and from an environment variable.

    The variable contains one or more keys, one base64 line each, optionally with their
    ``untrusted comment:`` lines. Raises :class:`KeyFileError` when a file or the
    variable is missing or invalid, or when no key is given at all.
    """
    keys = [parse_public_key(read_key_text(str(path), "public key file"), str(path))
            for path in files]
    if variable is not None:
        text = environ.get(variable)
        if not text:
            raise KeyFileError(
                f"environment variable {variable} (public_keys_env) is not set or empty; "
                "set it to the trusted minisign public keys, one per line"
            )
        keys.extend(parse_public_keys(text, f"environment variable {variable}"))
    if not keys:
        raise KeyFileError("no trusted public key: set public_keys, public_keys_env or both")
    return tuple(keys)
