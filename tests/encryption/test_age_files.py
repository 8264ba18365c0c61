"""pipeline.encryption.files: age files for public keys, checked with age and age-keygen."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers.age import AgeKey, age, age_with_passphrase, keygen
from pipeline.encryption import EncryptionError
from pipeline.encryption.files import (
    decrypt_file,
    encrypt_file,
    parse_identities,
    parse_recipient,
)


@pytest.fixture
def key(tmp_path: Path) -> AgeKey:
    return keygen(tmp_path)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "app.tar"
    path.write_bytes(os.urandom(200_000))
    return path


def _identities(key: AgeKey):
    return parse_identities(key.identity.read_text(), str(key.identity))


def test_encrypt_file_age_decrypts(tmp_path: Path, key: AgeKey, plain: Path) -> None:
    encrypt_file(plain, tmp_path / "app.tar.age", recipients=[key.recipient])

    result = age("-d", "-i", str(key.identity), "-o", str(tmp_path / "out"),
                 str(tmp_path / "app.tar.age"))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_encrypt_file_several_recipients(tmp_path: Path, plain: Path) -> None:
    first, second = keygen(tmp_path, "first.txt"), keygen(tmp_path, "second.txt")
    encrypt_file(plain, tmp_path / "app.tar.age", recipients=[first.recipient, second.recipient])

    result = age("-d", "-i", str(second.identity), "-o", str(tmp_path / "out"),
                 str(tmp_path / "app.tar.age"))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_decrypt_file_from_age(tmp_path: Path, key: AgeKey, plain: Path) -> None:
    result = age("-r", key.recipient, "-o", str(tmp_path / "app.tar.age"), str(plain))
    assert result.returncode == 0, result.stderr

    decrypt_file(tmp_path / "app.tar.age", tmp_path / "out", identities=_identities(key))

    assert (tmp_path / "out").read_bytes() == plain.read_bytes()
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o600


def test_decrypt_file_armored(tmp_path: Path, key: AgeKey, plain: Path) -> None:
    age("-a", "-r", key.recipient, "-o", str(tmp_path / "app.tar.age"), str(plain))

    decrypt_file(tmp_path / "app.tar.age", tmp_path / "out", identities=_identities(key))

    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_decrypt_file_passphrase_from_age(tmp_path: Path, plain: Path) -> None:
    code, terminal = age_with_passphrase("-p", "-o", str(tmp_path / "app.tar.age"), str(plain),
                                         passphrase="pass phrase")
    assert code == 0, terminal

    decrypt_file(tmp_path / "app.tar.age", tmp_path / "out", passphrase="pass phrase")

    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_encrypt_file_passphrase_age_decrypts(tmp_path: Path, plain: Path) -> None:
    encrypt_file(plain, tmp_path / "app.tar.age", passphrase="pass phrase")

    code, terminal = age_with_passphrase("-d", "-o", str(tmp_path / "out"),
                                         str(tmp_path / "app.tar.age"), passphrase="pass phrase")

    assert code == 0, terminal
    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_decrypt_file_wrong_identity(tmp_path: Path, key: AgeKey, plain: Path) -> None:
    other = keygen(tmp_path, "other.txt")
    encrypt_file(plain, tmp_path / "app.tar.age", recipients=[key.recipient])

    with pytest.raises(EncryptionError) as error:
        decrypt_file(tmp_path / "app.tar.age", tmp_path / "out", identities=_identities(other))
    assert str(error.value) == f"{tmp_path}/app.tar.age: decryption failed: No matching keys found"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "app.tar", "app.tar.age", "identity.txt", "other.txt",
    ]


def test_decrypt_file_changed_payload_leaves_no_output(tmp_path: Path, key: AgeKey,
                                                      plain: Path) -> None:
    encrypt_file(plain, tmp_path / "app.tar.age", recipients=[key.recipient])
    data = bytearray((tmp_path / "app.tar.age").read_bytes())
    data[-100] ^= 1
    (tmp_path / "app.tar.age").write_bytes(bytes(data))

    with pytest.raises(EncryptionError) as error:
        decrypt_file(tmp_path / "app.tar.age", tmp_path / "out", identities=_identities(key))
    assert str(error.value) == (
        f"{tmp_path}/app.tar.age: decryption failed (decryption error): the file was changed "
        f"or cut short, or {tmp_path}/out could not be written"
    )
    assert not (tmp_path / "out").exists()
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".partial")]


def test_decrypt_file_passphrase_needed(tmp_path: Path, plain: Path) -> None:
    encrypt_file(plain, tmp_path / "app.tar.age", passphrase="pass phrase")

    with pytest.raises(EncryptionError) as error:
        decrypt_file(tmp_path / "app.tar.age", tmp_path / "out")
    assert str(error.value) == (
        f"{tmp_path}/app.tar.age: encrypted to a passphrase; set SHIPLINE_AGE_PASSPHRASE"
    )


def test_decrypt_file_identity_needed(tmp_path: Path, key: AgeKey, plain: Path) -> None:
    encrypt_file(plain, tmp_path / "app.tar.age", recipients=[key.recipient])

    with pytest.raises(EncryptionError) as error:
        decrypt_file(tmp_path / "app.tar.age", tmp_path / "out", passphrase="pass phrase")
    assert str(error.value) == (
        f"{tmp_path}/app.tar.age: encrypted to public keys; give an identity file "
        "(--identity) or set SHIPLINE_AGE_IDENTITY"
    )


def test_decrypt_file_not_age(tmp_path: Path, plain: Path) -> None:
    with pytest.raises(EncryptionError) as error:
        decrypt_file(plain, tmp_path / "out", passphrase="pass phrase")
    assert str(error.value) == (
        f"{plain}: not an age file: the first line is not 'age-encryption.org/v1'"
    )


def test_decrypt_file_missing(tmp_path: Path) -> None:
    with pytest.raises(EncryptionError) as error:
        decrypt_file(tmp_path / "nope.age", tmp_path / "out", passphrase="x")
    assert str(error.value) == f"{tmp_path}/nope.age: file not found"


def test_encrypt_file_needs_one_kind(tmp_path: Path, key: AgeKey, plain: Path) -> None:
    with pytest.raises(EncryptionError) as error:
        encrypt_file(plain, tmp_path / "out", recipients=[key.recipient], passphrase="x")
    assert str(error.value) == "give either recipients or a passphrase, not both or neither"


def test_parse_recipient_invalid() -> None:
    with pytest.raises(EncryptionError) as error:
        parse_recipient("age1notakey")
    assert str(error.value) == (
        "invalid recipient 'age1notakey': invalid Bech32 encoding; expected an age public "
        "key (age1...) or an SSH public key"
    )


def test_parse_identities_skips_comments(key: AgeKey) -> None:
    text = key.identity.read_text()

    assert text.startswith("# created: ")
    assert len(parse_identities(text, "identity.txt")) == 1


def test_parse_identities_invalid_line_hides_value() -> None:
    with pytest.raises(EncryptionError) as error:
        parse_identities("# comment\nAGE-SECRET-KEY-1SECRETVALUE\n", "SHIPLINE_AGE_IDENTITY")
    assert str(error.value) == (
        "SHIPLINE_AGE_IDENTITY line 2: not an age identity (expected AGE-SECRET-KEY-1...)"
    )


def test_parse_identities_empty() -> None:
    with pytest.raises(EncryptionError) as error:
        parse_identities("# only a comment\n", "identity.txt")
    assert str(error.value) == "identity.txt: contains no age identity"
