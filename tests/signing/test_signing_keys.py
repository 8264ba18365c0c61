"""pipeline.signing.keys: minisign key files, read and written, checked with minisign."""

from __future__ import annotations

import base64
import stat
import struct
from pathlib import Path

import pytest

from helpers.minisign import generate, minisign
from pipeline.signing import KeyFileError
from pipeline.signing.keys import (
    format_secret_key,
    generate_key,
    key_id_text,
    parse_public_key,
    parse_public_keys,
    parse_secret_key,
    read_key_text,
    scrypt_parameters,
    write_key_pair,
)
from pipeline.signing.signatures import sign_file

# Cheap scrypt limits (N = 2**14, 16 MiB) so that tests of protected keys run fast.
FAST = {"opslimit": 1 << 20, "memlimit": 1 << 24}


def test_scrypt_parameters_minisign_default() -> None:
    assert scrypt_parameters(1 << 25, 1 << 30) == (20, 8, 1)


def test_scrypt_parameters_memory_bound() -> None:
    assert scrypt_parameters(1 << 20, 1 << 24) == (14, 8, 2)


def test_scrypt_parameters_operations_bound() -> None:
    assert scrypt_parameters(32768, 1 << 30) == (10, 8, 1)


def test_scrypt_parameters_raises_low_opslimit() -> None:
    assert scrypt_parameters(1, 1 << 30) == scrypt_parameters(32768, 1 << 30)


def test_public_key_round_trip() -> None:
    key = generate_key().public_key

    parsed = parse_public_key(key.to_file_text(), "k.pub")

    assert parsed == key
    assert key.to_file_text().startswith(
        f"untrusted comment: minisign public key {key.key_id_hex}\n"
    )


def test_public_key_bare_base64() -> None:
    key = generate_key().public_key

    assert parse_public_key(key.to_base64(), "SHIPLINE_TRUSTED_KEYS") == key


def test_public_key_id_matches_minisign(tmp_path: Path) -> None:
    keys = generate(tmp_path)
    comment = keys.public.read_text().splitlines()[0]

    key = parse_public_key(keys.public.read_text(), str(keys.public))

    assert comment == f"untrusted comment: minisign public key {key.key_id_hex}"


def test_public_key_invalid_base64() -> None:
    with pytest.raises(KeyFileError) as error:
        parse_public_key("untrusted comment: x\nnot base64!\n", "k.pub")
    assert str(error.value) == "k.pub: the public key line is not valid base64"


def test_public_key_wrong_length() -> None:
    with pytest.raises(KeyFileError) as error:
        parse_public_key(base64.b64encode(b"Ed" + bytes(10)).decode(), "k.pub")
    assert str(error.value) == (
        "k.pub: not a minisign public key (12 bytes after base64 decoding, expected 42)"
    )


def test_public_key_unknown_algorithm() -> None:
    with pytest.raises(KeyFileError) as error:
        parse_public_key(base64.b64encode(b"Xx" + bytes(40)).decode(), "k.pub")
    assert str(error.value) == (
        "k.pub: unsupported key algorithm b'Xx'; only Ed25519 ('Ed') is known"
    )


def test_public_key_empty_file() -> None:
    with pytest.raises(KeyFileError) as error:
        parse_public_key("untrusted comment: nothing else\n", "k.pub")
    assert str(error.value) == "k.pub: contains no minisign public key"


def test_public_keys_several_lines() -> None:
    first, second = generate_key().public_key, generate_key().public_key
    text = f"{first.to_file_text()}\n{second.to_base64()}\n"

    assert parse_public_keys(text, "KEYS") == [first, second]


def test_public_keys_none() -> None:
    with pytest.raises(KeyFileError) as error:
        parse_public_keys("\n  \n", "KEYS")
    assert str(error.value) == "KEYS: contains no minisign public key"


def test_public_keys_names_bad_line() -> None:
    with pytest.raises(KeyFileError) as error:
        parse_public_keys(f"{generate_key().public_key.to_base64()}\nAAAA\n", "KEYS")
    assert str(error.value) == (
        "KEYS line 2: not a minisign public key (3 bytes after base64 decoding, expected 42)"
    )


def test_secret_key_round_trip_without_password() -> None:
    key = generate_key()

    assert parse_secret_key(format_secret_key(key, None), "k.key", None) == key


def test_secret_key_round_trip_with_password() -> None:
    key = generate_key()
    text = format_secret_key(key, "correct horse", **FAST)

    assert parse_secret_key(text, "k.key", "correct horse") == key


def test_secret_key_wrong_password() -> None:
    text = format_secret_key(generate_key(), "correct horse", **FAST)

    with pytest.raises(KeyFileError) as error:
        parse_secret_key(text, "k.key", "battery staple")
    assert str(error.value) == "k.key: wrong password (SHIPLINE_KEY_PASSWORD) for this key"


def test_secret_key_missing_password() -> None:
    text = format_secret_key(generate_key(), "correct horse", **FAST)

    with pytest.raises(KeyFileError) as error:
        parse_secret_key(text, "k.key", None)
    assert str(error.value) == (
        "k.key: the secret key is password-protected; set SHIPLINE_KEY_PASSWORD to its password"
    )


def test_secret_key_damaged_checksum() -> None:
    data = bytearray(base64.b64decode(format_secret_key(generate_key(), None).splitlines()[1]))
    data[-1] ^= 1

    with pytest.raises(KeyFileError) as error:
        parse_secret_key(base64.b64encode(bytes(data)).decode(), "k.key", None)
    assert str(error.value) == "k.key: the key checksum does not match; the file is damaged"


def test_secret_key_rejects_excessive_scrypt_memory() -> None:
    data = bytearray(base64.b64decode(
        format_secret_key(generate_key(), "pw", **FAST).splitlines()[1]
    ))
    data[38:54] = struct.pack("<QQ", 1 << 40, 1 << 40)

    with pytest.raises(KeyFileError) as error:
        parse_secret_key(base64.b64encode(bytes(data)).decode(), "k.key", "pw")
    assert str(error.value) == (
        "k.key: the key asks scrypt for 1048576 MiB of memory, more than the 1024 MiB "
        "minisign uses; rejecting the key"
    )


def test_secret_key_wrong_length() -> None:
    with pytest.raises(KeyFileError) as error:
        parse_secret_key(base64.b64encode(bytes(20)).decode(), "k.key", None)
    assert str(error.value) == (
        "k.key: not a minisign secret key (20 bytes after base64 decoding, expected 158)"
    )


def test_secret_key_from_minisign_without_password(tmp_path: Path) -> None:
    keys = generate(tmp_path)
    package = tmp_path / "app.tar"
    package.write_bytes(b"release 1.4.2\n")

    key = parse_secret_key(keys.secret.read_text(), str(keys.secret), None)
    (tmp_path / "app.tar.minisig").write_text(sign_file(package, key, "version:1.4.2"))

    result = minisign("-V", "-p", str(keys.public), "-m", str(package))
    assert result.returncode == 0, result.stderr
    assert "Trusted comment: version:1.4.2" in result.stdout


def test_secret_key_from_minisign_with_password(tmp_path: Path) -> None:
    # minisign -G always uses its full scrypt cost (1 GiB), so this test takes seconds.
    keys = generate(tmp_path, password="pass phrase")
    package = tmp_path / "app.tar"
    package.write_bytes(b"release 1.4.2\n")

    key = parse_secret_key(keys.secret.read_text(), str(keys.secret), "pass phrase")
    (tmp_path / "app.tar.minisig").write_text(sign_file(package, key, "version:1.4.2"))

    result = minisign("-V", "-p", str(keys.public), "-m", str(package))
    assert result.returncode == 0, result.stderr


def test_secret_key_ours_used_by_minisign(tmp_path: Path) -> None:
    key = generate_key()
    (tmp_path / "our.key").write_text(format_secret_key(key, "pass phrase", **FAST))
    (tmp_path / "our.pub").write_text(key.public_key.to_file_text())
    package = tmp_path / "app.tar"
    package.write_bytes(b"release 1.4.2\n")

    signed = minisign("-S", "-s", str(tmp_path / "our.key"), "-m", str(package),
                      password="pass phrase")
    verified = minisign("-V", "-p", str(tmp_path / "our.pub"), "-m", str(package))

    assert signed.returncode == 0, signed.stderr
    assert verified.returncode == 0, verified.stderr


def test_write_key_pair_files(tmp_path: Path) -> None:
    key = generate_key()

    secret, public = write_key_pair(str(tmp_path / "release"), key, None)

    assert (secret, public) == (f"{tmp_path}/release.key", f"{tmp_path}/release.pub")
    assert stat.S_IMODE(Path(secret).stat().st_mode) == 0o600
    assert parse_public_key(Path(public).read_text(), public) == key.public_key


def test_write_key_pair_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "release.pub").write_text("keep me")

    with pytest.raises(KeyFileError) as error:
        write_key_pair(str(tmp_path / "release"), generate_key(), None)
    assert str(error.value) == (
        f"{tmp_path}/release.pub: already exists; remove it or choose another --output"
    )
    assert (tmp_path / "release.pub").read_text() == "keep me"
    assert not (tmp_path / "release.key").exists()


def test_read_key_text_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as error:
        read_key_text(str(tmp_path / "nope.pub"), "public key file")
    assert str(error.value) == f"{tmp_path}/nope.pub: public key file not found"


def test_read_key_text_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as error:
        read_key_text(str(tmp_path), "public key file")
    assert str(error.value) == f"{tmp_path}: is a directory; pass the public key file itself"


def test_read_key_text_binary(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_bytes(b"\xff\xfe\x00")

    with pytest.raises(KeyFileError) as error:
        read_key_text(str(tmp_path / "k.pub"), "public key file")
    assert str(error.value) == f"{tmp_path}/k.pub: not a minisign public key file (not UTF-8 text)"


def test_secret_key_wrong_public_half() -> None:
    key = generate_key()
    other = generate_key()
    forged = type(key)(key.key_id, key.seed, other.public_raw)

    with pytest.raises(KeyFileError) as error:
        parse_secret_key(format_secret_key(forged, None), "k.key", None)
    assert str(error.value) == (
        "k.key: the public key stored in the file does not belong to the secret key; "
        "the file is damaged"
    )


def test_secret_key_ours_without_password_used_by_minisign(tmp_path: Path) -> None:
    key = generate_key()
    (tmp_path / "our.key").write_text(format_secret_key(key, None))
    (tmp_path / "our.pub").write_text(key.public_key.to_file_text())
    package = tmp_path / "app.tar"
    package.write_bytes(b"release 1.4.2\n")

    signed = minisign("-S", "-W", "-s", str(tmp_path / "our.key"), "-m", str(package))
    verified = minisign("-V", "-p", str(tmp_path / "our.pub"), "-m", str(package))

    assert signed.returncode == 0, signed.stderr
    assert verified.returncode == 0, verified.stderr


def test_key_id_text_drops_leading_zeros() -> None:
    # minisign 0.11 prints a key id that starts with a zero digit without it.
    assert key_id_text(bytes.fromhex("616F40990554DE0E")) == "EDE540599406F61"
