"""minisign key files: parse, generate and write Ed25519 key pairs.

A public key file has an ``untrusted comment:`` line and one base64 line that decodes
to 42 bytes: the algorithm ``Ed``, an 8-byte key id and the 32-byte public key.

A secret key file has the same comment line and one base64 line that decodes to 158
bytes. They start with the signature algorithm ``Ed``, the KDF algorithm (``Sc`` for
scrypt, two zero bytes for none), the checksum algorithm ``B2``, a 32-byte salt, and
the scrypt opslimit and memlimit (little-endian 64-bit). The last 104 bytes are the key
material: key id (8), Ed25519 seed (32), public key (32) and a BLAKE2b-256 checksum (32)
of algorithm, key id, seed and public key. With scrypt, the key material is XORed with
104 bytes derived from the password, and the checksum shows that the password was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from pipeline.signing import KeyFileError

#: Name of the environment variable that contains the password of a secret key.
PASSWORD_VARIABLE = "SHIPLINE_KEY_PASSWORD"  # noqa: S105 (a variable name)

SIGNATURE_ALGORITHM = b"Ed"
KDF_SCRYPT = b"Sc"
KDF_NONE = b"\x00\x00"
CHECKSUM_ALGORITHM = b"B2"

#: The scrypt cost minisign 0.11 writes into new keys: libsodium's "sensitive" limits,
#: which select N = 2**20, r = 8, p = 1 (1 GiB of memory).
DEFAULT_OPSLIMIT = 1 << 25
DEFAULT_MEMLIMIT = 1 << 30
#: The maximum memory, in bytes, that a key file may request from scrypt. minisign never
#: writes more than :data:`DEFAULT_MEMLIMIT`, and a forged file must not make shipline
#: allocate more.
MAX_SCRYPT_MEMORY = 1 << 30

_PUBLIC_KEY_SIZE = 42
_SECRET_KEY_SIZE = 158
_KEY_MATERIAL_SIZE = 104


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key with its minisign key id."""

    key_id: bytes
    raw: bytes

    @property
    def key_id_hex(self) -> str:
        """The key id as minisign prints it: see :func:`key_id_text`."""
        return key_id_text(self.key_id)

    def verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def to_base64(self) -> str:
        return base64.b64encode(SIGNATURE_ALGORITHM + self.key_id + self.raw).decode("ascii")

    def to_file_text(self) -> str:
        return f"untrusted comment: minisign public key {self.key_id_hex}\n{self.to_base64()}\n"


@dataclass(frozen=True)
class SecretKey:
    """An Ed25519 key pair with its minisign key id."""

    key_id: bytes
    seed: bytes
    public_raw: bytes

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self.key_id, self.public_raw)

    def signer(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)


def key_id_text(key_id: bytes) -> str:
    """Return the key id as minisign prints it: the little-endian number in upper-case
    hex, without leading zeros, as minisign 0.11 prints it."""
    return f"{int.from_bytes(key_id, 'little'):X}"


def generate_key() -> SecretKey:
    """Generate a key pair with a random 8-byte key id."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return SecretKey(secrets.token_bytes(8), seed, _public_bytes(private))


def _public_bytes(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def parse_public_key(text: str, source: str) -> PublicKey:
    """Parse a public key file, or a bare base64 key as ``minisign -P`` takes it.

    ``source`` names the file or variable in errors. Raises :class:`KeyFileError`.
    """
    data = _decode_payload(text, source, "public key")
    if len(data) != _PUBLIC_KEY_SIZE:
        raise KeyFileError(
            f"{source}: not a minisign public key ({len(data)} bytes after base64 "
            f"decoding, expected {_PUBLIC_KEY_SIZE})"
        )
    if data[:2] != SIGNATURE_ALGORITHM:
        raise KeyFileError(
            f"{source}: unsupported key algorithm {data[:2]!r}; only Ed25519 ('Ed') is known"
        )
    return PublicKey(data[2:10], data[10:])


def parse_public_keys(text: str, source: str) -> list[PublicKey]:
    """Parse one or more public keys: base64 lines, each optionally after its comment.

    Used for keys given in one environment variable, where several keys may be listed
    one per line. Raises :class:`KeyFileError` when there is none or one is invalid.
    """
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("untrusted comment:"):
            continue
        keys.append(parse_public_key(stripped, f"{source} line {number}"))
    if not keys:
        raise KeyFileError(f"{source}: contains no minisign public key")
    return keys


def parse_secret_key(text: str, source: str, password: str | None) -> SecretKey:
    """Parse a secret key file, decrypting it with ``password`` when it is protected.

    Raises :class:`KeyFileError` for a malformed file, a protected key without a
    password, a scrypt cost above :data:`MAX_SCRYPT_MEMORY`, or a wrong password.
    """
    data = _decode_payload(text, source, "secret key")
    if len(data) != _SECRET_KEY_SIZE:
        raise KeyFileError(
            f"{source}: not a minisign secret key ({len(data)} bytes after base64 "
            f"decoding, expected {_SECRET_KEY_SIZE})"
        )

    algorithm, kdf, checksum_algorithm = data[0:2], data[2:4], data[4:6]
    if algorithm != SIGNATURE_ALGORITHM or checksum_algorithm != CHECKSUM_ALGORITHM:
        raise KeyFileError(f"{source}: unsupported algorithms {algorithm!r}/{checksum_algorithm!r}")
    salt = data[6:38]
    opslimit, memlimit = struct.unpack("<QQ", data[38:54])
    material = data[54:]

    if kdf == KDF_SCRYPT:
        if not password:
            raise KeyFileError(
                f"{source}: the secret key is password-protected; set {PASSWORD_VARIABLE} "
                "to its password"
            )
        stream = derive_key_stream(password, salt, opslimit, memlimit, source)
        material = bytes(a ^ b for a, b in zip(material, stream, strict=True))
    elif kdf != KDF_NONE:
        raise KeyFileError(f"{source}: unsupported key derivation algorithm {kdf!r}")

    key_id, seed, public_raw, checksum = (
        material[0:8], material[8:40], material[40:72], material[72:104]
    )
    # minisign 0.11 writes a zero checksum into keys without a password (-W), so
    # there only a non-zero checksum is compared. The public key derived from the seed
    # is compared in every case.
    unchecked = kdf == KDF_NONE and checksum == bytes(32)
    if not unchecked and not secrets.compare_digest(checksum, _checksum(key_id, seed, public_raw)):
        if kdf == KDF_SCRYPT:
            raise KeyFileError(f"{source}: wrong password ({PASSWORD_VARIABLE}) for this key")
        raise KeyFileError(f"{source}: the key checksum does not match; the file is damaged")

    key = SecretKey(key_id, seed, public_raw)
    if _public_bytes(key.signer()) != public_raw:
        raise KeyFileError(
            f"{source}: the public key stored in the file does not belong to the secret "
            "key; the file is damaged"
        )
    return key


def format_secret_key(
    key: SecretKey,
    password: str | None,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> str:
    """Return the text of a secret key file; protected with scrypt unless ``password`` is None.

    ``opslimit`` and ``memlimit`` are libsodium's scrypt limits, stored in the file so
    that minisign derives the same key. Lower values than the defaults weaken the
    protection and exist for tests.
    """
    material = key.key_id + key.seed + key.public_raw
    material += _checksum(key.key_id, key.seed, key.public_raw)

    if password is None:
        header = SIGNATURE_ALGORITHM + KDF_NONE + CHECKSUM_ALGORITHM + bytes(32 + 16)
        payload = header + material
    else:
        salt = secrets.token_bytes(32)
        stream = derive_key_stream(password, salt, opslimit, memlimit, "new key")
        encrypted = bytes(a ^ b for a, b in zip(material, stream, strict=True))
        limits = struct.pack("<QQ", opslimit, memlimit)
        payload = SIGNATURE_ALGORITHM + KDF_SCRYPT + CHECKSUM_ALGORITHM + salt + limits + encrypted

    encoded = base64.b64encode(payload).decode("ascii")
    return f"untrusted comment: minisign encrypted secret key\n{encoded}\n"


def derive_key_stream(
    password: str, salt: bytes, opslimit: int, memlimit: int, source: str
) -> bytes:
    """Derive the 104 bytes that protect the key material, as minisign does.

    Raises :class:`KeyFileError` when the limits ask for more than
    :data:`MAX_SCRYPT_MEMORY` bytes of memory.
    """
    n_log2, r, p = scrypt_parameters(opslimit, memlimit)
    memory = 128 * r * ((1 << n_log2) + p + 2)
    if memory > MAX_SCRYPT_MEMORY + (1 << 20):
        raise KeyFileError(
            f"{source}: the key asks scrypt for {memory >> 20} MiB of memory, more than "
            f"the {MAX_SCRYPT_MEMORY >> 20} MiB minisign uses; rejecting the key"
        )
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=1 << n_log2, r=r, p=p,
        maxmem=memory + (1 << 20), dklen=_KEY_MATERIAL_SIZE,
    )


def scrypt_parameters(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """Turn libsodium's opslimit and memlimit into scrypt's (log2 N, r, p).

    This is the rule of libsodium's crypto_pwhash_scryptsalsa208sha256, which minisign
    calls: r is 8; when the operation budget is the smaller limit, p is 1 and N fits
    the operations, otherwise N fits the memory and p spends the remaining operations.
    """
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
        return _largest_log2(max_n), r, p

    max_n = memlimit // (r * 128)
    n_log2 = _largest_log2(max_n)
    max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
    return n_log2, r, max(max_rp // r, 1)


def _largest_log2(max_n: int) -> int:
    """Return the smallest n_log2 in 1..63 with 2**n_log2 > max_n // 2 (libsodium's loop)."""
    n_log2 = 1
    while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
        n_log2 += 1
    return n_log2


def write_key_pair(prefix: str, key: SecretKey, password: str | None) -> tuple[str, str]:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; never overwrite either.

    Returns the two paths. Raises :class:`KeyFileError` when one exists already or
    cannot be written.
    """
    secret_path, public_path = f"{prefix}.key", f"{prefix}.pub"
    for path in (secret_path, public_path):
        if os.path.lexists(path):
            raise KeyFileError(f"{path}: already exists; remove it or choose another --output")

    secret_text = format_secret_key(key, password)
    _write_new(secret_path, secret_text, 0o600)
    _write_new(public_path, key.public_key.to_file_text(), 0o644)
    return secret_path, public_path


def _write_new(path: str, text: str, mode: int) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot be created: {exc.strerror}") from exc
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(text)


def _checksum(key_id: bytes, seed: bytes, public_raw: bytes) -> bytes:
    return hashlib.blake2b(
        SIGNATURE_ALGORITHM + key_id + seed + public_raw, digest_size=32
    ).digest()


def _decode_payload(text: str, source: str, kind: str) -> bytes:
    """Return the decoded base64 line of a key file: the first line that is not a comment."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("untrusted comment:"):
            continue
        try:
            return base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFileError(f"{source}: the {kind} line is not valid base64") from exc
    raise KeyFileError(f"{source}: contains no minisign {kind}")


def read_key_text(path: str, kind: str) -> str:
    """Read a key or signature file as text; ``kind`` names it in errors.

    Raises :class:`KeyFileError` when the file is missing, a directory, unreadable or
    not text.
    """
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: {kind} not found") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path}: is a directory; pass the {kind} itself") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not a minisign {kind} (not UTF-8 text)") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the {kind}: {exc.strerror}") from None
