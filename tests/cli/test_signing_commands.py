"""``shipline keygen``, ``sign`` and ``verify``, with minisign on the other side."""

from __future__ import annotations

from pathlib import Path

from helpers.minisign import generate, minisign
from pipeline.exitcodes import ExitCode
from pipeline.signing.keys import parse_public_key

NO_PASSWORD = {"SHIPLINE_KEY_PASSWORD": ""}


def _package(tmp_path: Path) -> Path:
    path = tmp_path / "app.tar"
    path.write_bytes(b"release 1.4.2\n")
    return path


def test_keygen_without_password(shipline_cli, tmp_path):
    result = shipline_cli("keygen", "--output", "release", "--no-password", cwd=tmp_path)

    key = parse_public_key((tmp_path / "release.pub").read_text(), "release.pub")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == (
        "wrote release.key (secret key, without a password) and release.pub "
        f"(public key, key id {key.key_id_hex})\n"
    )


def test_keygen_requires_password(shipline_cli, tmp_path):
    result = shipline_cli("keygen", "--output", "release", cwd=tmp_path, env=NO_PASSWORD)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: SHIPLINE_KEY_PASSWORD is not set or empty; set it to the password "
        "for the new secret key, or pass --no-password\n"
    )
    assert not (tmp_path / "release.key").exists()


def test_keygen_never_overwrites(shipline_cli, tmp_path):
    (tmp_path / "release.key").write_text("old key")

    result = shipline_cli("keygen", "-o", "release", "--no-password", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: release.key: already exists; remove it or choose another --output\n"
    )
    assert (tmp_path / "release.key").read_text() == "old key"


def test_keygen_requires_output(shipline_cli, tmp_path):
    result = shipline_cli("keygen", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: the following arguments are required: --output/-o "
        "(see 'shipline keygen --help')\n"
    )


def test_keygen_with_password_minisign_signs(shipline_cli, tmp_path):
    # Full minisign scrypt cost (1 GiB, about 2 s per derivation): this is the key
    # format users get, so minisign must open it with the same password.
    env = {"SHIPLINE_KEY_PASSWORD": "pass phrase"}
    created = shipline_cli("keygen", "-o", "release", cwd=tmp_path, env=env)
    package = _package(tmp_path)

    signed = minisign("-S", "-s", str(tmp_path / "release.key"), "-m", str(package),
                      password="pass phrase")
    verified = shipline_cli("verify", "app.tar", "--pubkey", "release.pub", cwd=tmp_path)

    assert created.exit_code == ExitCode.OK, created.stderr
    assert "password-protected" in created.stdout
    assert signed.returncode == 0, signed.stderr
    assert verified.exit_code == ExitCode.OK, verified.stderr


def test_sign_verified_by_minisign(shipline_cli, tmp_path):
    shipline_cli("keygen", "-o", "release", "--no-password", cwd=tmp_path)
    _package(tmp_path)

    result = shipline_cli("sign", "app.tar", "--key", "release.key", "--comment",
                          "version:1.4.2", cwd=tmp_path, env=NO_PASSWORD)
    checked = minisign("-V", "-p", str(tmp_path / "release.pub"), "-m",
                       str(tmp_path / "app.tar"))

    key = parse_public_key((tmp_path / "release.pub").read_text(), "release.pub")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == f"wrote app.tar.minisig (key id {key.key_id_hex})\n"
    assert checked.returncode == 0, checked.stderr
    assert "Trusted comment: version:1.4.2" in checked.stdout


def test_sign_default_comment(shipline_cli, tmp_path):
    shipline_cli("keygen", "-o", "release", "--no-password", cwd=tmp_path)
    _package(tmp_path)

    shipline_cli("sign", "app.tar", "-k", "release.key", cwd=tmp_path, env=NO_PASSWORD)

    comment = (tmp_path / "app.tar.minisig").read_text().splitlines()[2]
    assert comment.startswith("trusted comment: timestamp:")
    assert comment.endswith("\tfile:app.tar\thashed")


def test_sign_protected_key_without_password(shipline_cli, tmp_path):
    generate(tmp_path, password="pass phrase")
    _package(tmp_path)

    result = shipline_cli("sign", "app.tar", "--key", "minisign.key", cwd=tmp_path,
                          env=NO_PASSWORD)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: minisign.key: the secret key is password-protected; set "
        "SHIPLINE_KEY_PASSWORD to its password\n"
    )


def test_sign_missing_file(shipline_cli, tmp_path):
    result = shipline_cli("sign", "nope.tar", "--key", "release.key", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: nope.tar: file to sign not found\n"


def test_sign_missing_key(shipline_cli, tmp_path):
    _package(tmp_path)

    result = shipline_cli("sign", "app.tar", "--key", "release.key", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: release.key: secret key file not found\n"


def test_verify_minisign_signature(shipline_cli, tmp_path):
    keys = generate(tmp_path)
    package = _package(tmp_path)
    minisign("-S", "-W", "-s", str(keys.secret), "-m", str(package), "-t", "version:1.4.2")

    result = shipline_cli("verify", "app.tar", "--pubkey", "minisign.pub", cwd=tmp_path)

    key = parse_public_key(keys.public.read_text(), "minisign.pub")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == (
        f"app.tar: signature verified with key {key.key_id_hex}\n"
        "trusted comment: version:1.4.2\n"
    )


def test_verify_tampered_file_blocks(shipline_cli, tmp_path):
    keys = generate(tmp_path)
    package = _package(tmp_path)
    minisign("-S", "-W", "-s", str(keys.secret), "-m", str(package))
    package.write_bytes(b"release 6.6.6\n")

    result = shipline_cli("verify", "app.tar", "--pubkey", "minisign.pub", cwd=tmp_path)

    key = parse_public_key(keys.public.read_text(), "minisign.pub")
    assert result.exit_code == ExitCode.BLOCKED
    assert result.stderr == (
        "shipline: error: app.tar: the signature in app.tar.minisig does not match the file "
        f"(key {key.key_id_hex}); the file was changed or the signature is for another file\n"
    )


def test_verify_other_signature_path(shipline_cli, tmp_path):
    keys = generate(tmp_path)
    package = _package(tmp_path)
    minisign("-S", "-W", "-s", str(keys.secret), "-m", str(package), "-x",
             str(tmp_path / "sig"))

    result = shipline_cli("verify", "app.tar", "--pubkey", "minisign.pub", "-x", "sig",
                          cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr


def test_verify_missing_signature(shipline_cli, tmp_path):
    generate(tmp_path)
    _package(tmp_path)

    result = shipline_cli("verify", "app.tar", "--pubkey", "minisign.pub", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: app.tar.minisig: signature file not found\n"


def test_verify_missing_file(shipline_cli, tmp_path):
    result = shipline_cli("verify", "app.tar", "--pubkey", "minisign.pub", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: app.tar: file to verify not found\n"


def test_verify_invalid_public_key(shipline_cli, tmp_path):
    _package(tmp_path)
    (tmp_path / "bad.pub").write_text("untrusted comment: x\nAAAA\n")

    result = shipline_cli("verify", "app.tar", "--pubkey", "bad.pub", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: bad.pub: not a minisign public key (3 bytes after base64 decoding, "
        "expected 42)\n"
    )
