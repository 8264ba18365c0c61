"""pipeline.signing.signatures: .minisig files, checked both ways with the minisign binary."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from helpers.minisign import MinisignKeys, generate, minisign
from pipeline.signing import KeyFileError, VerificationError
from pipeline.signing.keys import PublicKey, SecretKey, generate_key, parse_public_key
from pipeline.signing.signatures import (
    default_trusted_comment,
    parse_signature,
    sign_data,
    sign_file,
    verify_data,
    verify_file,
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    path = tmp_path / "app-1.4.2.tar"
    path.write_bytes(b"release 1.4.2\n" * 1000)
    return path


@pytest.fixture
def minisign_keys(tmp_path: Path) -> MinisignKeys:
    return generate(tmp_path)


def _minisign_public(keys: MinisignKeys) -> PublicKey:
    return parse_public_key(keys.public.read_text(), str(keys.public))


def _sign(package: Path, key: SecretKey, comment: str = "version:1.4.2") -> Path:
    path = Path(f"{package}.minisig")
    path.write_text(sign_file(package, key, comment))
    return path


def _verify(package: Path, signature_path: Path, keys: list[PublicKey]) -> PublicKey:
    signature = parse_signature(signature_path.read_text(), str(signature_path))
    return verify_file(package, signature, keys, str(signature_path))


def test_sign_file_verified_by_minisign(package: Path, tmp_path: Path) -> None:
    key = generate_key()
    (tmp_path / "our.pub").write_text(key.public_key.to_file_text())
    _sign(package, key, "version:1.4.2\tbuild:77")

    result = minisign("-V", "-H", "-p", str(tmp_path / "our.pub"), "-m", str(package))

    assert result.returncode == 0, result.stderr
    assert "Trusted comment: version:1.4.2\tbuild:77\n" in result.stdout


def test_sign_file_tampered_rejected_by_minisign(package: Path, tmp_path: Path) -> None:
    key = generate_key()
    (tmp_path / "our.pub").write_text(key.public_key.to_file_text())
    _sign(package, key)
    package.write_bytes(package.read_bytes() + b"x")

    result = minisign("-V", "-p", str(tmp_path / "our.pub"), "-m", str(package))

    assert result.returncode != 0


def test_verify_file_minisign_prehashed(package: Path, minisign_keys: MinisignKeys) -> None:
    result = minisign("-S", "-W", "-s", str(minisign_keys.secret), "-m", str(package),
                      "-t", "version:1.4.2")
    assert result.returncode == 0, result.stderr
    signature_path = Path(f"{package}.minisig")

    key = _verify(package, signature_path, [_minisign_public(minisign_keys)])

    assert key == _minisign_public(minisign_keys)
    signature = parse_signature(signature_path.read_text(), "sig")
    assert signature.algorithm == b"ED"
    assert signature.trusted_comment == "version:1.4.2"


def test_verify_file_minisign_legacy(package: Path, minisign_keys: MinisignKeys) -> None:
    result = minisign("-S", "-l", "-W", "-s", str(minisign_keys.secret), "-m", str(package))
    assert result.returncode == 0, result.stderr
    signature_path = Path(f"{package}.minisig")

    key = _verify(package, signature_path, [_minisign_public(minisign_keys)])

    assert key == _minisign_public(minisign_keys)
    assert parse_signature(signature_path.read_text(), "sig").algorithm == b"Ed"


def test_verify_file_legacy_rejected_when_prehashed_required(
    package: Path, minisign_keys: MinisignKeys
) -> None:
    minisign("-S", "-l", "-W", "-s", str(minisign_keys.secret), "-m", str(package))
    signature = parse_signature(Path(f"{package}.minisig").read_text(), "app.minisig")

    with pytest.raises(VerificationError) as error:
        verify_file(package, signature, [_minisign_public(minisign_keys)], "app.minisig",
                    require_prehashed=True)
    assert str(error.value) == (
        "app.minisig: legacy signature (algorithm 'Ed'); a prehashed signature "
        "(algorithm 'ED') is required"
    )


def test_verify_file_minisign_tampered(package: Path, minisign_keys: MinisignKeys) -> None:
    minisign("-S", "-W", "-s", str(minisign_keys.secret), "-m", str(package))
    package.write_bytes(b"release 6.6.6\n")
    public = _minisign_public(minisign_keys)

    with pytest.raises(VerificationError) as error:
        _verify(package, Path(f"{package}.minisig"), [public])
    assert str(error.value) == (
        f"{package}: the signature in {package}.minisig does not match the file "
        f"(key {public.key_id_hex}); the file was changed or the signature is for another file"
    )


def test_verify_file_changed_trusted_comment(package: Path) -> None:
    key = generate_key()
    signature_path = _sign(package, key, "version:1.4.2")
    signature_path.write_text(
        signature_path.read_text().replace("version:1.4.2", "version:9.9.9")
    )

    with pytest.raises(VerificationError) as error:
        _verify(package, signature_path, [key.public_key])
    assert str(error.value) == (
        f"{signature_path}: the trusted comment does not match its signature "
        f"(key {key.public_key.key_id_hex}); it was changed after signing"
    )


def test_verify_file_untrusted_key(package: Path) -> None:
    signer, trusted = generate_key(), generate_key()
    signature_path = _sign(package, signer)

    with pytest.raises(VerificationError) as error:
        _verify(package, signature_path, [trusted.public_key])
    assert str(error.value) == (
        f"{signature_path}: signed with key {signer.public_key.key_id_hex}, which is not "
        f"a trusted key (trusted: {trusted.public_key.key_id_hex})"
    )


def test_verify_file_same_key_id_other_key(package: Path) -> None:
    signer = generate_key()
    impostor = PublicKey(signer.key_id, generate_key().public_raw)
    signature_path = _sign(package, signer)

    with pytest.raises(VerificationError) as error:
        _verify(package, signature_path, [impostor])
    assert "does not match the file" in str(error.value)


def test_verify_file_picks_key_by_id(package: Path) -> None:
    first, second = generate_key(), generate_key()
    signature_path = _sign(package, second)

    assert _verify(package, signature_path, [first.public_key, second.public_key]) == (
        second.public_key
    )


def test_sign_file_rejects_multiline_comment(package: Path) -> None:
    with pytest.raises(KeyFileError) as error:
        sign_file(package, generate_key(), "version:1.4.2\nversion:9.9.9")
    assert str(error.value) == "the trusted comment must be one line; remove the line break"


def test_default_trusted_comment(package: Path) -> None:
    assert default_trusted_comment(package, now=1_800_000_000.5) == (
        "timestamp:1800000000\tfile:app-1.4.2.tar\thashed"
    )


def _signature_lines(package: Path) -> list[str]:
    return sign_file(package, generate_key(), "c").splitlines()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: lines[:3], "sig: not a minisign signature (expected 4 lines, found 3)"),
        (lambda lines: ["comment: x", *lines[1:]],
         "sig: line 1 must start with 'untrusted comment:'"),
        (lambda lines: [lines[0], lines[1], "comment: x", lines[3]],
         "sig: line 3 must start with 'trusted comment:'"),
        (lambda lines: [lines[0], "@@@", *lines[2:]], "sig: line 2 is not valid base64"),
        (lambda lines: [lines[0], "AAAA", *lines[2:]],
         "sig: line 2 decodes to 3 bytes, expected 74"),
        (lambda lines: [*lines[:3], "AAAA"], "sig: line 4 decodes to 3 bytes, expected 64"),
        (lambda lines: [lines[0], base64.b64encode(b"Zz" + bytes(72)).decode(), *lines[2:]],
         "sig: unsupported signature algorithm b'Zz'"),
    ],
)
def test_parse_signature_malformed(package: Path, edit, message: str) -> None:
    text = "\n".join(edit(_signature_lines(package)))

    with pytest.raises(KeyFileError) as error:
        parse_signature(text, "sig")
    assert str(error.value) == message


def test_sign_data_verifies_as_file(package: Path) -> None:
    key = generate_key()
    text = sign_data(package.read_bytes(), key, "version:1.4.2")
    signature = parse_signature(text, "data.minisig")

    verified = verify_file(package, signature, [key.public_key], "data.minisig")

    assert verified == key.public_key


def test_verify_data_rejects_changed_bytes(package: Path) -> None:
    key = generate_key()
    signature = parse_signature(sign_file(package, key, "version:1.4.2"), "app.minisig")

    with pytest.raises(VerificationError) as caught:
        verify_data(b"release 1.4.3\n", "the document", signature, [key.public_key],
                    "app.minisig")

    assert str(caught.value) == (
        f"the document: the signature in app.minisig does not match the file (key "
        f"{key.public_key.key_id_hex}); the file was changed or the signature is for "
        f"another file"
    )
