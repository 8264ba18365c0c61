"""age files encrypted to a passphrase (the scrypt recipient), streamed in 64 KiB chunks.

The format, from the age specification (age-encryption.org/v1, C2SP):

- The header is the line ``age-encryption.org/v1``, one stanza
  ``-> scrypt <salt> <log2 N>`` followed by its body, and the line ``--- <mac>``.
  Salts, bodies and MACs are base64 without padding, and body lines have 64
  characters except the last, which is shorter.
- A random 16-byte file key is wrapped with ChaCha20-Poly1305 (zero nonce) under
  ``scrypt(passphrase, "age-encryption.org/v1/scrypt" + salt, N, r=8, p=1)``.
- The MAC is HMAC-SHA256 of the header up to and including ``---``, keyed with
  HKDF-SHA256(file key, salt empty, info ``header``).
- The payload is a 16-byte nonce and then chunks of 64 KiB of plaintext, each sealed
  with ChaCha20-Poly1305 under HKDF-SHA256(file key, salt nonce, info ``payload``).
  A chunk's nonce is an 11-byte big-endian counter and a byte that is 1 for the last
  chunk only. Only an empty file has an empty last chunk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeline.encryption import EncryptionError

VERSION_LINE = b"age-encryption.org/v1"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
#: log2 of scrypt's N for new files, the value age 1.1 uses.
DEFAULT_WORK_FACTOR = 18
#: The largest log2 N accepted when decrypting, as in age 1.1, so that a forged file
#: cannot make shipline spend minutes and gigabytes on scrypt.
MAX_WORK_FACTOR = 22
CHUNK_SIZE = 64 * 1024
_TAG_SIZE = 16
_MAX_HEADER_LINE = 4096
_MAX_STANZAS = 64


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza of an age header."""

    type: str
    arguments: tuple[str, ...]
    body: bytes


@dataclass(frozen=True)
class Header:
    """A parsed age header, with the bytes that its MAC covers."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes


def encrypt(source: BinaryIO, target: BinaryIO, passphrase: str,
            work_factor: int = DEFAULT_WORK_FACTOR) -> None:
    """Encrypt ``source`` to ``passphrase``, writing the age file to ``target``."""
    if not passphrase:
        raise EncryptionError("the passphrase is empty")

    file_key = os.urandom(16)
    salt = os.urandom(16)
    wrap_key = _scrypt_key(passphrase, salt, work_factor)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)

    header = VERSION_LINE + b"\n"
    header += b"-> scrypt " + _b64encode(salt) + b" " + str(work_factor).encode() + b"\n"
    header += _wrap_body(body) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()
    target.write(header + b" " + _b64encode(mac) + b"\n")

    nonce = os.urandom(16)
    target.write(nonce)
    _seal_chunks(source, target, ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload")))


def decrypt(source: BinaryIO, target: BinaryIO, passphrase: str) -> None:
    """Decrypt an age file made for a passphrase from ``source`` into ``target``.

    Raises :class:`EncryptionError` for a header that is not a valid scrypt header, a
    wrong passphrase, or a payload that was changed or cut short. ``target`` may then
    have received part of the plaintext, so callers write to a temporary file.
    """
    header = read_header(source)
    stanza = _scrypt_stanza(header)
    salt = _b64decode(stanza.arguments[0], "scrypt salt")
    work_factor = _work_factor(stanza.arguments[1])
    if len(salt) != 16 or len(stanza.body) != 32:
        raise EncryptionError("invalid age header: malformed scrypt stanza")

    wrap_key = _scrypt_key(passphrase, salt, work_factor)
    try:
        file_key = ChaCha20Poly1305(wrap_key).decrypt(bytes(12), stanza.body, None)
    except InvalidTag:
        raise EncryptionError("wrong passphrase (or a damaged file header)") from None

    expected = hmac.new(_hkdf(file_key, b"", b"header"), header.mac_input, hashlib.sha256)
    if not hmac.compare_digest(expected.digest(), header.mac):
        raise EncryptionError("the age header was changed: its MAC does not match")

    nonce = source.read(16)
    if len(nonce) != 16:
        raise EncryptionError("the age file is truncated: the payload nonce is missing")
    _open_chunks(source, target, ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload")))


def read_header(source: BinaryIO) -> Header:
    """Parse the age header at the start of ``source``, leaving it at the payload.

    Raises :class:`EncryptionError` when the header is not a valid age v1 header.
    """
    first = _read_line(source)
    if first != VERSION_LINE:
        raise EncryptionError("not an age file: the first line is not 'age-encryption.org/v1'")

    covered = first + b"\n"
    stanzas: list[Stanza] = []
    while True:
        line = _read_line(source)
        if line.startswith(b"--- ") or line == b"---":
            covered += b"---"
            mac = _b64decode(line[4:].decode("ascii", "replace"), "header MAC")
            if len(mac) != 32:
                raise EncryptionError("invalid age header: the MAC is not 32 bytes")
            return Header(tuple(stanzas), mac, covered)
        if not line.startswith(b"-> ") or len(stanzas) >= _MAX_STANZAS:
            raise EncryptionError("invalid age header: expected a stanza or the MAC line")
        covered += line + b"\n"
        body, body_lines = _read_body(source)
        covered += body_lines
        fields = line[3:].decode("ascii", "replace").split(" ")
        stanzas.append(Stanza(fields[0], tuple(fields[1:]), body))


def _read_body(source: BinaryIO) -> tuple[bytes, bytes]:
    """Read a stanza body: 64-character lines up to one that is shorter."""
    encoded = ""
    raw = b""
    while True:
        line = _read_line(source)
        raw += line + b"\n"
        if len(line) > 64:
            raise EncryptionError("invalid age header: a stanza body line is too long")
        encoded += line.decode("ascii", "replace")
        if len(line) < 64:
            return _b64decode(encoded, "stanza body"), raw


def _read_line(source: BinaryIO) -> bytes:
    line = source.readline(_MAX_HEADER_LINE)
    if not line.endswith(b"\n"):
        raise EncryptionError("invalid age header: a line is too long or the file ends early")
    return line[:-1]


def _scrypt_stanza(header: Header) -> Stanza:
    types = [stanza.type for stanza in header.stanzas]
    if "scrypt" not in types:
        raise EncryptionError(
            "the file is not encrypted to a passphrase; decrypt it with an identity"
        )
    if len(types) != 1:
        raise EncryptionError("invalid age header: a scrypt stanza must be the only stanza")
    stanza = header.stanzas[0]
    if len(stanza.arguments) != 2:
        raise EncryptionError("invalid age header: a scrypt stanza has two arguments")
    return stanza


def _work_factor(text: str) -> int:
    if not re.fullmatch("[1-9][0-9]?", text):
        raise EncryptionError(f"invalid age header: scrypt work factor '{text}'")
    work_factor = int(text)
    if work_factor > MAX_WORK_FACTOR:
        raise EncryptionError(
            f"the file asks for scrypt work factor {work_factor}, more than the maximum "
            f"{MAX_WORK_FACTOR}; rejecting it"
        )
    return work_factor


def _seal_chunks(source: BinaryIO, target: BinaryIO, cipher: ChaCha20Poly1305) -> None:
    counter = 0
    chunk = _read_full(source, CHUNK_SIZE)
    while True:
        following = _read_full(source, CHUNK_SIZE) if len(chunk) == CHUNK_SIZE else b""
        last = not following
        target.write(cipher.encrypt(_chunk_nonce(counter, last), chunk, None))
        if last:
            return
        chunk = following
        counter += 1


def _open_chunks(source: BinaryIO, target: BinaryIO, cipher: ChaCha20Poly1305) -> None:
    counter = 0
    sealed = _read_full(source, CHUNK_SIZE + _TAG_SIZE)
    while True:
        following = _read_full(source, CHUNK_SIZE + _TAG_SIZE)
        last = not following
        if last and counter > 0 and len(sealed) == _TAG_SIZE:
            raise EncryptionError("the age payload ends with an empty chunk; it is damaged")
        try:
            target.write(cipher.decrypt(_chunk_nonce(counter, last), sealed, None))
        except InvalidTag:
            raise EncryptionError(
                f"the age payload was changed or cut short (chunk {counter} does not "
                "authenticate)"
            ) from None
        if last:
            return
        sealed = following
        counter += 1


def _chunk_nonce(counter: int, last: bool) -> bytes:
    if counter >= 1 << 88:
        raise EncryptionError("the file is too large for the age format")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _read_full(source: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at the end of the stream."""
    data = source.read(size)
    while data and len(data) < size:
        more = source.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _scrypt_key(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    n = 1 << work_factor
    return hashlib.scrypt(
        passphrase.encode("utf-8"), salt=SCRYPT_LABEL + salt, n=n, r=8, p=1,
        maxmem=128 * 8 * (n + 3) + (1 << 20), dklen=32,
    )


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _wrap_body(body: bytes) -> bytes:
    encoded = _b64encode(body)
    lines = [encoded[index:index + 64] for index in range(0, len(encoded), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append(b"")
    return b"".join(line + b"\n" for line in lines)


def _b64encode(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _b64decode(text: str, field: str) -> bytes:
    """Decode unpadded base64 and reject every other spelling of the same bytes."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(f"invalid age header: the {field} is not valid base64") from None
    if _b64encode(data).decode("ascii") != text:
        raise EncryptionError(f"invalid age header: the {field} is not canonical base64")
    return data
