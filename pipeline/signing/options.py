"""The pipeline-file options that name a signed package, shared by the ``verify`` gate
and package inputs of deploy steps.

This module imports no cryptography, so that ``shipline validate`` stays fast.
Relative paths are read from the pipeline file's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.signing.package import PackageCheck

_PATH = {"type": "string", "minLength": 1}
#: 64 hex digits, or text with a ${VAR} reference that :func:`sha256_problem` checks
#: after interpolation.
SHA256_PATTERN = r"^([0-9a-fA-F]{64}|.*\$\{.*)$"

#: JSON Schema properties of a signed package.
PACKAGE_PROPERTIES: Mapping[str, Any] = {
    "file": {
        **_PATH, "title": "Package file",
        "description": "The package file to check, relative to the pipeline file's folder.",
    },
    "signature": {
        **_PATH, "title": "Signature file",
        "description": "The minisign signature of the file. Default: the file's path "
        "followed by .minisig.",
    },
    "public_keys": {
        "title": "Trusted public key files",
        "description": "minisign public key files; a signature by any of them is accepted.",
        "type": "array", "items": _PATH, "minItems": 1,
    },
    "public_keys_env": {
        "title": "Trusted public keys variable",
        "description": "Name of an environment variable that contains trusted minisign "
        "public keys, one base64 line each.",
        "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
    },
    "sha256": {
        "title": "Expected SHA-256",
        "description": "The hex SHA-256 digest the file must have.",
        "type": "string", "pattern": SHA256_PATTERN,
    },
    "require_version_in_comment": {
        "title": "Require the version in the trusted comment",
        "description": "The signature's trusted comment must contain a field that is the "
        "version, or ends with ':' and the version (version:1.4.2).",
        "type": "boolean", "default": False,
    },
}

def sha256_problem(options: Mapping[str, Any]) -> str | None:
    """Return why the interpolated ``sha256`` option is invalid, or None when it is valid."""
    value = options.get("sha256")
    if value is None or re.fullmatch("[0-9a-fA-F]{64}", str(value)):
        return None
    return f"sha256 '{value}' is not a SHA-256 digest: expected 64 hex digits"


def keys_missing(options: Mapping[str, Any]) -> bool:
    """Tell whether neither ``public_keys`` nor ``public_keys_env`` is given."""
    return not options.get("public_keys") and not options.get("public_keys_env")


#: The message for options where :func:`keys_missing` is true.
KEYS_MISSING_MESSAGE = "no trusted public key: set public_keys, public_keys_env or both"


def package_check(
    options: Mapping[str, Any], folder: Path, version: str | None
) -> PackageCheck:
    """Build the checks of a package from its options; ``version`` None skips that check.

    Raises :class:`~pipeline.signing.KeyFileError` when a trusted key cannot be read.
    """
    from pipeline.signing.package import PackageCheck, load_trusted_keys

    file = folder / str(options["file"])
    signature = folder / str(options.get("signature") or f"{options['file']}.minisig")
    keys = load_trusted_keys(
        [folder / str(path) for path in options.get("public_keys") or ()],
        options.get("public_keys_env"),
    )
    sha256 = options.get("sha256")
    return PackageCheck(file, signature, keys, None if sha256 is None else str(sha256), version)
