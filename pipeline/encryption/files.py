"""Encrypt and decrypt whole files, to recipients' public keys or to a passphrase.

The output is written to a temporary file (mode 0600) beside the target and renamed
over it only when the operation succeeded, so a wrong key or a damaged input never
leaves a partial plaintext behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyrage
from pyrage import ssh, x25519

from pipeline.encryption import EncryptionError
from pipeline.encryption import passphrase as scrypt_format

if TYPE_CHECKING:
    from pyrage import _Identity, _Recipient

logger = logging.getLogger("shipline")

#: Environment variable of the passphrase of ``shipline encrypt --passphrase`` and decrypt.
PASSPHRASE_VARIABLE = "SHIPLINE_AGE_PASSPHRASE"  # noqa: S105 (a variable name)
#: Environment variable with the text of an identity file, used when none is named.
IDENTITY_VARIABLE = "SHIPLINE_AGE_IDENTITY"
_ARMOR_LINE = b"-----BEGIN AGE ENCRYPTED FILE-----"


def parse_recipient(text: str) -> _Recipient:
    """Parse an X25519 (``age1...``) or SSH (``ssh-ed25519 ...``, ``ssh-rsa ...``) key."""
    value = text.strip()
    try:
        if value.startswith("ssh-"):
            return ssh.Recipient.from_str(value)
        return x25519.Recipient.from_str(value)
    except pyrage.RecipientError as exc:
        raise EncryptionError(
            f"invalid recipient '{value}': {exc}; expected an age public key (age1...) "
            "or an SSH public key"
        ) from None


def parse_identities(text: str, source: str) -> list[_Identity]:
    """Parse the X25519 identities of an age identity file, as ``age-keygen`` writes it.

    Blank lines and ``#`` comments are skipped. ``source`` names the file or variable
    in errors; the key itself never appears in a message.
    """
    identities: list[_Identity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(stripped))
        except pyrage.IdentityError:
            raise EncryptionError(
                f"{source} line {number}: not an age identity (expected AGE-SECRET-KEY-1...)"
            ) from None
    if not identities:
        raise EncryptionError(f"{source}: contains no age identity")
    return identities


def encrypt_file(
    source: Path, target: Path, *, recipients: Sequence[str] = (),
    passphrase: str | None = None,
) -> None:
    """Encrypt ``source`` into ``target``, to every recipient or else to the passphrase.

    Raises :class:`EncryptionError` for invalid recipients, or when both or neither
    of recipients and passphrase are given.
    """
    if bool(recipients) == (passphrase is not None):
        raise EncryptionError("give either recipients or a passphrase, not both or neither")
    parsed = [parse_recipient(text) for text in recipients]

    with _open_input(source) as plaintext, _replace_on_success(target) as output:
        if passphrase is not None:
            scrypt_format.encrypt(plaintext, output, passphrase)
        else:
            try:
                pyrage.encrypt_io(plaintext, output, parsed)
            except pyrage.EncryptError as exc:
                raise EncryptionError(f"{source}: encryption failed: {exc}") from None
    logger.info("encrypted %s into %s", source, target)


def decrypt_file(
    source: Path, target: Path, *, identities: Sequence[_Identity] = (),
    passphrase: str | None = None,
) -> None:
    """Decrypt the age file ``source`` into ``target``.

    A file encrypted to a passphrase needs ``passphrase``; any other needs an identity
    that matches one of its recipients. Raises :class:`EncryptionError` naming the
    file when neither fits, the key is wrong or the file was changed.
    """
    with _open_input(source) as ciphertext, _replace_on_success(target) as output:
        if _is_passphrase_file(ciphertext, source):
            if passphrase is None:
                raise EncryptionError(
                    f"{source}: encrypted to a passphrase; set {PASSPHRASE_VARIABLE}"
                )
            try:
                scrypt_format.decrypt(ciphertext, output, passphrase)
            except EncryptionError as exc:
                raise EncryptionError(f"{source}: {exc}") from None
        else:
            if not identities:
                raise EncryptionError(
                    f"{source}: encrypted to public keys; give an identity file "
                    f"(--identity) or set {IDENTITY_VARIABLE}"
                )
            try:
                pyrage.decrypt_io(ciphertext, output, list(identities))
            except pyrage.DecryptError as exc:
                raise EncryptionError(f"{source}: decryption failed: {exc}") from None
            except OSError as exc:
                # pyrage 1.4 reports a payload chunk that does not authenticate as
                # OSError("decryption error"), and a failed write as OSError too.
                raise EncryptionError(
                    f"{source}: decryption failed ({exc}): the file was changed or cut "
                    f"short, or {target} could not be written"
                ) from None
    logger.info("decrypted %s into %s", source, target)


def age_header_line(path: Path) -> str | None:
    """Return the first line of ``path`` when it starts like an age file, else ``None``.

    Both forms count: the binary header ``age-encryption.org/v1`` and the armored
    ``-----BEGIN AGE ENCRYPTED FILE-----``. Only the first bytes are read, and a file
    that cannot be read returns ``None``, so the caller's own read reports the error.
    """
    try:
        with path.open("rb") as file:
            start = file.read(len(_ARMOR_LINE) + 1)
    except OSError:
        return None

    for line in (scrypt_format.VERSION_LINE, _ARMOR_LINE):
        if start.startswith(line) and start[len(line):len(line) + 1] in (b"\n", b"\r"):
            return line.decode("ascii")
    return None


def _is_passphrase_file(ciphertext: BinaryIO, source: Path) -> bool:
    """Tell from the header whether the file has a scrypt stanza; rewind the file."""
    if ciphertext.read(len(_ARMOR_LINE)) == _ARMOR_LINE:
        ciphertext.seek(0)
        return False
    ciphertext.seek(0)
    try:
        header = scrypt_format.read_header(ciphertext)
    except EncryptionError as exc:
        raise EncryptionError(f"{source}: {exc}") from None
    ciphertext.seek(0)
    return any(stanza.type == "scrypt" for stanza in header.stanzas)


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[io.BufferedReader]:
    try:
        file = path.open("rb")
    except FileNotFoundError:
        raise EncryptionError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise EncryptionError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise EncryptionError(f"{path}: cannot be read: {exc.strerror}") from None
    with file:
        yield file


@contextlib.contextmanager
def _replace_on_success(target: Path) -> Iterator[io.BufferedWriter]:
    folder = target.parent
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial", dir=folder
        )
    except OSError as exc:
        raise EncryptionError(f"{target}: cannot be written: {exc.strerror}") from None

    try:
        with open(descriptor, "wb") as output:
            yield output
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
