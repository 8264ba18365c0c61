"""minisign signature files: sign a file and verify a signature against trusted keys.

A ``.minisig`` file has four lines::

    untrusted comment: <text, not covered by any signature>
    base64(algorithm (2) | key id (8) | Ed25519 signature (64))
    trusted comment: <one line of text>
    base64(Ed25519 global signature (64))

With the algorithm ``ED`` the first signature covers the BLAKE2b-512 digest of the
file, which shipline computes while streaming the file. With the legacy ``Ed`` it
covers the file itself, so verifying a legacy signature reads the whole file into
memory, as minisign does. The global signature covers the first signature followed by
the trusted comment, so a changed comment fails verification too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from pipeline.signing import KeyFileError, VerificationError
from pipeline.signing.keys import PublicKey, SecretKey, key_id_text

PREHASHED = b"ED"
LEGACY = b"Ed"

_CHUNK_SIZE = 1 << 20
_SIGNATURE_SIZE = 74
_TRUSTED_PREFIX = "trusted comment: "
_UNTRUSTED_PREFIX = "untrusted comment: "
#: The untrusted comment of signatures that shipline makes.
DEFAULT_UNTRUSTED_COMMENT = "signature from shipline secret key"


@dataclass(frozen=True)
class Signature:
    """A parsed ``.minisig`` file."""

    algorithm: bytes
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str

    @property
    def key_id_hex(self) -> str:
        return key_id_text(self.key_id)


def default_trusted_comment(path: Path, now: float | None = None) -> str:
    """Return the trusted comment minisign writes: the time and the file's base name."""
    timestamp = int(time.time() if now is None else now)
    return f"timestamp:{timestamp}\tfile:{path.name}\thashed"


def sign_file(
    path: Path,
    key: SecretKey,
    trusted_comment: str,
    untrusted_comment: str = DEFAULT_UNTRUSTED_COMMENT,
) -> str:
    """Sign ``path`` with a prehashed (``ED``) signature; return the ``.minisig`` text.

    Raises :class:`KeyFileError` when a comment has a line break, because the file
    format has one line for each, and ``OSError`` when the file cannot be read.
    """
    return _sign_digest(file_blake2b(path), key, trusted_comment, untrusted_comment)


def sign_data(
    data: bytes,
    key: SecretKey,
    trusted_comment: str,
    untrusted_comment: str = DEFAULT_UNTRUSTED_COMMENT,
) -> str:
    """Sign ``data`` as :func:`sign_file` signs a file with that content.

    Raises :class:`KeyFileError` when a comment has a line break.
    """
    return _sign_digest(hashlib.blake2b(data, digest_size=64).digest(), key,
                        trusted_comment, untrusted_comment)


def _sign_digest(
    digest: bytes, key: SecretKey, trusted_comment: str, untrusted_comment: str
) -> str:
    for name, comment in (("trusted", trusted_comment), ("untrusted", untrusted_comment)):
        if "\n" in comment or "\r" in comment:
            raise KeyFileError(f"the {name} comment must be one line; remove the line break")

    signer = key.signer()
    signature = signer.sign(digest)
    global_signature = signer.sign(signature + trusted_comment.encode("utf-8"))
    first = base64.b64encode(PREHASHED + key.key_id + signature).decode("ascii")
    second = base64.b64encode(global_signature).decode("ascii")
    return (
        f"{_UNTRUSTED_PREFIX}{untrusted_comment}\n{first}\n"
        f"{_TRUSTED_PREFIX}{trusted_comment}\n{second}\n"
    )


def parse_signature(text: str, source: str) -> Signature:
    """Parse the text of a ``.minisig`` file; ``source`` names it in errors.

    Raises :class:`KeyFileError` when a line is missing or malformed.
    """
    lines = text.splitlines()
    if len(lines) < 4:
        raise KeyFileError(
            f"{source}: not a minisign signature (expected 4 lines, found {len(lines)})"
        )
    if not lines[0].startswith(_UNTRUSTED_PREFIX):
        raise KeyFileError(f"{source}: line 1 must start with '{_UNTRUSTED_PREFIX.strip()}'")
    if not lines[2].startswith(_TRUSTED_PREFIX):
        raise KeyFileError(f"{source}: line 3 must start with '{_TRUSTED_PREFIX.strip()}'")

    first = _decode_line(lines[1], source, 2)
    if len(first) != _SIGNATURE_SIZE:
        raise KeyFileError(
            f"{source}: line 2 decodes to {len(first)} bytes, expected {_SIGNATURE_SIZE}"
        )
    if first[:2] not in (PREHASHED, LEGACY):
        raise KeyFileError(f"{source}: unsupported signature algorithm {first[:2]!r}")
    global_signature = _decode_line(lines[3], source, 4)
    if len(global_signature) != 64:
        raise KeyFileError(
            f"{source}: line 4 decodes to {len(global_signature)} bytes, expected 64"
        )

    return Signature(
        algorithm=first[:2],
        key_id=first[2:10],
        signature=first[10:],
        trusted_comment=lines[2][len(_TRUSTED_PREFIX):],
        global_signature=global_signature,
        untrusted_comment=lines[0][len(_UNTRUSTED_PREFIX):],
    )


def verify_file(
    path: Path,
    signature: Signature,
    trusted_keys: Sequence[PublicKey],
    signature_source: str,
    *,
    require_prehashed: bool = False,
) -> PublicKey:
    """Verify ``path`` against ``signature`` with the trusted key of the same key id.

    Returns the key that verified. Raises :class:`VerificationError` (exit 3), naming
    the failed check: no trusted key has the signature's key id, a legacy signature
    when ``require_prehashed`` is set, the file does not match the signature, or the
    trusted comment does not match the global signature. ``OSError`` when the file
    cannot be read.
    """
    _check_algorithm(signature, require_prehashed, signature_source)
    message = file_blake2b(path) if signature.algorithm == PREHASHED else path.read_bytes()
    return _verify_message(message, str(path), signature, trusted_keys, signature_source)


def verify_data(
    data: bytes,
    label: str,
    signature: Signature,
    trusted_keys: Sequence[PublicKey],
    signature_source: str,
    *,
    require_prehashed: bool = False,
) -> PublicKey:
    """Verify ``data`` as :func:`verify_file` verifies a file with that content.

    ``label`` names the data in errors, in place of the file's path. Returns the key
    that verified and raises :class:`VerificationError` as :func:`verify_file` does.
    """
    _check_algorithm(signature, require_prehashed, signature_source)
    if signature.algorithm == PREHASHED:
        data = hashlib.blake2b(data, digest_size=64).digest()
    return _verify_message(data, label, signature, trusted_keys, signature_source)


def _check_algorithm(signature: Signature, require_prehashed: bool, source: str) -> None:
    if signature.algorithm == LEGACY and require_prehashed:
        raise VerificationError(
            f"{source}: legacy signature (algorithm 'Ed'); a prehashed "
            "signature (algorithm 'ED') is required"
        )


def _verify_message(
    message: bytes,
    label: str,
    signature: Signature,
    trusted_keys: Sequence[PublicKey],
    signature_source: str,
) -> PublicKey:
    """Check both signatures of ``signature`` over ``message`` (digest or content)."""
    key = _key_for(signature, trusted_keys, signature_source)
    verifier = key.verifier()
    try:
        verifier.verify(signature.signature, message)
    except InvalidSignature:
        raise VerificationError(
            f"{label}: the signature in {signature_source} does not match the file "
            f"(key {key.key_id_hex}); the file was changed or the signature is for "
            "another file"
        ) from None

    try:
        verifier.verify(
            signature.global_signature,
            signature.signature + signature.trusted_comment.encode("utf-8"),
        )
    except InvalidSignature:
        raise VerificationError(
            f"{signature_source}: the trusted comment does not match its signature "
            f"(key {key.key_id_hex}); it was changed after signing"
        ) from None
    return key


def file_blake2b(path: Path) -> bytes:
    """Return the BLAKE2b-512 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.blake2b(digest_size=64)
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.digest()


def _key_for(
    signature: Signature, trusted_keys: Sequence[PublicKey], signature_source: str
) -> PublicKey:
    for key in trusted_keys:
        if key.key_id == signature.key_id:
            return key
    trusted = ", ".join(key.key_id_hex for key in trusted_keys) or "none"
    raise VerificationError(
        f"{signature_source}: signed with key {signature.key_id_hex}, which is not a "
        f"trusted key (trusted: {trusted})"
    )


def _decode_line(line: str, source: str, number: int) -> bytes:
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{source}: line {number} is not valid base64") from exc
