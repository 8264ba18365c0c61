"""``shipline encrypt`` and ``decrypt``, with age and age-keygen on the other side."""

from __future__ import annotations

from pathlib import Path

from helpers.age import age, keygen
from pipeline.exitcodes import ExitCode

NO_SECRETS = {"SHIPLINE_AGE_PASSPHRASE": "", "SHIPLINE_AGE_IDENTITY": ""}


def _plain(tmp_path: Path) -> Path:
    path = tmp_path / "app.tar"
    path.write_bytes(b"release 1.4.2\n" * 5000)
    return path


def test_encrypt_recipient_age_decrypts(shipline_cli, tmp_path):
    key = keygen(tmp_path)
    plain = _plain(tmp_path)

    result = shipline_cli("encrypt", "app.tar", "--recipient", key.recipient, "-o",
                          "app.tar.age", cwd=tmp_path)
    decrypted = age("-d", "-i", str(key.identity), str(tmp_path / "app.tar.age"))

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == "wrote app.tar.age\n"
    assert decrypted.stdout == plain.read_bytes()


def test_decrypt_identity_file(shipline_cli, tmp_path):
    key = keygen(tmp_path)
    plain = _plain(tmp_path)
    age("-r", key.recipient, "-o", str(tmp_path / "app.tar.age"), str(plain))

    result = shipline_cli("decrypt", "app.tar.age", "--identity", "identity.txt", "-o",
                          "out.tar", cwd=tmp_path, env=NO_SECRETS)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert (tmp_path / "out.tar").read_bytes() == plain.read_bytes()


def test_decrypt_identity_from_environment(shipline_cli, tmp_path):
    key = keygen(tmp_path)
    plain = _plain(tmp_path)
    age("-r", key.recipient, "-o", str(tmp_path / "app.tar.age"), str(plain))

    result = shipline_cli("decrypt", "app.tar.age", "-o", "out.tar", cwd=tmp_path,
                          env={"SHIPLINE_AGE_IDENTITY": key.identity.read_text()})

    assert result.exit_code == ExitCode.OK, result.stderr
    assert (tmp_path / "out.tar").read_bytes() == plain.read_bytes()


def test_encrypt_passphrase_round_trip(shipline_cli, tmp_path):
    plain = _plain(tmp_path)
    env = {"SHIPLINE_AGE_PASSPHRASE": "pass phrase"}

    encrypted = shipline_cli("encrypt", "app.tar", "--passphrase", "-o", "app.tar.age",
                             cwd=tmp_path, env=env)
    decrypted = shipline_cli("decrypt", "app.tar.age", "-o", "out.tar", cwd=tmp_path, env=env)

    assert encrypted.exit_code == ExitCode.OK, encrypted.stderr
    assert decrypted.exit_code == ExitCode.OK, decrypted.stderr
    assert (tmp_path / "out.tar").read_bytes() == plain.read_bytes()


def test_encrypt_passphrase_variable_missing(shipline_cli, tmp_path):
    _plain(tmp_path)

    result = shipline_cli("encrypt", "app.tar", "--passphrase", "-o", "app.tar.age",
                          cwd=tmp_path, env=NO_SECRETS)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: --passphrase: SHIPLINE_AGE_PASSPHRASE is not set or empty; set it "
        "to the passphrase\n"
    )


def test_encrypt_needs_recipient(shipline_cli, tmp_path):
    result = shipline_cli("encrypt", "app.tar", "-o", "app.tar.age", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: give at least one --recipient, or --passphrase\n"


def test_encrypt_recipient_and_passphrase(shipline_cli, tmp_path):
    result = shipline_cli("encrypt", "app.tar", "-r", "age1x", "--passphrase", "-o", "out",
                          cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: give --recipient or --passphrase, not both\n"


def test_encrypt_invalid_recipient(shipline_cli, tmp_path):
    _plain(tmp_path)

    result = shipline_cli("encrypt", "app.tar", "-r", "age1x", "-o", "out", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: invalid recipient 'age1x': invalid Bech32 encoding; expected an "
        "age public key (age1...) or an SSH public key\n"
    )
    assert not (tmp_path / "out").exists()


def test_encrypt_missing_file(shipline_cli, tmp_path):
    key = keygen(tmp_path)

    result = shipline_cli("encrypt", "nope.tar", "-r", key.recipient, "-o", "out", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: nope.tar: file not found\n"


def test_encrypt_requires_output(shipline_cli, tmp_path):
    result = shipline_cli("encrypt", "app.tar", "-r", "age1x", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: the following arguments are required: --output/-o "
        "(see 'shipline encrypt --help')\n"
    )


def test_decrypt_missing_identity_file(shipline_cli, tmp_path):
    result = shipline_cli("decrypt", "app.tar.age", "-i", "nope.txt", "-o", "out",
                          cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: nope.txt: identity file not found\n"


def test_decrypt_wrong_identity(shipline_cli, tmp_path):
    key, other = keygen(tmp_path), keygen(tmp_path, "other.txt")
    plain = _plain(tmp_path)
    age("-r", key.recipient, "-o", str(tmp_path / "app.tar.age"), str(plain))

    result = shipline_cli("decrypt", "app.tar.age", "-i", "other.txt", "-o", "out",
                          cwd=tmp_path, env=NO_SECRETS)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: app.tar.age: decryption failed: No matching keys found\n"
    )
    assert not (tmp_path / "out").exists()
    assert other.identity.exists()
