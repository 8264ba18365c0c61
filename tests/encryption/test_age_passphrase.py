"""pipeline.encryption.passphrase: age files for a passphrase, checked with the age binary."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from helpers.age import age_with_passphrase
from pipeline.encryption import EncryptionError
from pipeline.encryption.passphrase import CHUNK_SIZE, decrypt, encrypt, read_header

PASSPHRASE = "correct horse battery"
SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]


def _encrypt(plaintext: bytes, work_factor: int = 10) -> bytes:
    output = io.BytesIO()
    encrypt(io.BytesIO(plaintext), output, PASSPHRASE, work_factor)
    return output.getvalue()


def _decrypt(ciphertext: bytes, passphrase: str = PASSPHRASE) -> bytes:
    output = io.BytesIO()
    decrypt(io.BytesIO(ciphertext), output, passphrase)
    return output.getvalue()


@pytest.mark.parametrize("size", SIZES)
def test_passphrase_round_trip(size: int) -> None:
    plaintext = os.urandom(size)

    assert _decrypt(_encrypt(plaintext)) == plaintext


@pytest.mark.parametrize("size", [0, CHUNK_SIZE, CHUNK_SIZE + 100])
def test_passphrase_age_decrypts_ours(tmp_path: Path, size: int) -> None:
    plaintext = os.urandom(size)
    (tmp_path / "file.age").write_bytes(_encrypt(plaintext, work_factor=18))

    code, terminal = age_with_passphrase("-d", "-o", str(tmp_path / "out"),
                                         str(tmp_path / "file.age"), passphrase=PASSPHRASE)

    assert code == 0, terminal
    # age creates the output file on its first write, so an empty plaintext leaves none.
    out = tmp_path / "out"
    assert (out.read_bytes() if out.exists() else b"") == plaintext


@pytest.mark.parametrize("size", [0, CHUNK_SIZE, CHUNK_SIZE + 100])
def test_passphrase_ours_decrypts_age(tmp_path: Path, size: int) -> None:
    plaintext = os.urandom(size)
    (tmp_path / "plain").write_bytes(plaintext)

    code, terminal = age_with_passphrase("-p", "-o", str(tmp_path / "file.age"),
                                         str(tmp_path / "plain"), passphrase=PASSPHRASE)

    assert code == 0, terminal
    assert _decrypt((tmp_path / "file.age").read_bytes()) == plaintext


def test_passphrase_header_format() -> None:
    ciphertext = _encrypt(b"x", work_factor=12)

    header = read_header(io.BytesIO(ciphertext))

    lines = ciphertext.split(b"\n")
    assert lines[0] == b"age-encryption.org/v1"
    assert lines[1].startswith(b"-> scrypt ")
    assert lines[1].endswith(b" 12")
    assert lines[3].startswith(b"--- ")
    assert [stanza.type for stanza in header.stanzas] == ["scrypt"]
    assert len(header.stanzas[0].body) == 32


def test_passphrase_wrong() -> None:
    with pytest.raises(EncryptionError) as error:
        _decrypt(_encrypt(b"secret package"), "wrong horse")
    assert str(error.value) == "wrong passphrase (or a damaged file header)"


def test_passphrase_empty_rejected() -> None:
    with pytest.raises(EncryptionError) as error:
        encrypt(io.BytesIO(b"x"), io.BytesIO(), "")
    assert str(error.value) == "the passphrase is empty"


def test_passphrase_changed_payload() -> None:
    ciphertext = bytearray(_encrypt(os.urandom(2 * CHUNK_SIZE + 10)))
    ciphertext[-CHUNK_SIZE // 2] ^= 1

    with pytest.raises(EncryptionError) as error:
        _decrypt(bytes(ciphertext))
    assert str(error.value) == (
        "the age payload was changed or cut short (chunk 1 does not authenticate)"
    )


def test_passphrase_truncated_at_chunk_boundary() -> None:
    ciphertext = _encrypt(os.urandom(2 * CHUNK_SIZE + 10))
    header_size = len(ciphertext) - 16 - (2 * (CHUNK_SIZE + 16) + 10 + 16)
    cut = ciphertext[:header_size + 16 + CHUNK_SIZE + 16]

    with pytest.raises(EncryptionError) as error:
        _decrypt(cut)
    assert str(error.value) == (
        "the age payload was changed or cut short (chunk 0 does not authenticate)"
    )


def test_passphrase_appended_data() -> None:
    ciphertext = _encrypt(os.urandom(100)) + b"more"

    with pytest.raises(EncryptionError) as error:
        _decrypt(ciphertext)
    assert str(error.value) == (
        "the age payload was changed or cut short (chunk 0 does not authenticate)"
    )


def test_passphrase_missing_nonce() -> None:
    ciphertext = _encrypt(b"")
    header_end = ciphertext.index(b"\n---") + 1
    header_end = ciphertext.index(b"\n", header_end) + 1

    with pytest.raises(EncryptionError) as error:
        _decrypt(ciphertext[:header_end + 5])
    assert str(error.value) == "the age file is truncated: the payload nonce is missing"


def test_passphrase_changed_header_mac() -> None:
    lines = _encrypt(b"x").split(b"\n", 4)
    lines[3] = b"--- " + b"A" * 43

    with pytest.raises(EncryptionError) as error:
        _decrypt(b"\n".join(lines))
    assert str(error.value) == "the age header was changed: its MAC does not match"


def test_passphrase_work_factor_too_large() -> None:
    lines = _encrypt(b"x").split(b"\n", 4)
    lines[1] = lines[1].rsplit(b" ", 1)[0] + b" 30"

    with pytest.raises(EncryptionError) as error:
        _decrypt(b"\n".join(lines))
    assert str(error.value) == (
        "the file asks for scrypt work factor 30, more than the maximum 22; rejecting it"
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [b"age-encryption.org/v2", *lines[1:]],
         "not an age file: the first line is not 'age-encryption.org/v1'"),
        (lambda lines: [lines[0], lines[1] + b" extra", *lines[2:]],
         "invalid age header: a scrypt stanza has two arguments"),
        (lambda lines: [lines[0], lines[1].replace(b" 10", b" 010"), *lines[2:]],
         "invalid age header: scrypt work factor '010'"),
        (lambda lines: [lines[0], lines[1], lines[2] + b"=", *lines[3:]],
         "invalid age header: the stanza body is not canonical base64"),
        (lambda lines: [lines[0], lines[1], lines[2][:-1] + b"!", *lines[3:]],
         "invalid age header: the stanza body is not valid base64"),
        (lambda lines: [lines[0], lines[1], lines[2], b"-> X25519 abc", lines[2], *lines[3:]],
         "invalid age header: a scrypt stanza must be the only stanza"),
        (lambda lines: [lines[0], b"junk", *lines[2:]],
         "invalid age header: expected a stanza or the MAC line"),
    ],
)
def test_passphrase_malformed_header(edit, message: str) -> None:
    lines = _encrypt(b"x").split(b"\n", 4)

    with pytest.raises(EncryptionError) as error:
        _decrypt(b"\n".join(edit(lines)))
    assert str(error.value) == message
