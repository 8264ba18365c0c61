"""``shipline approve``: approval documents signed with minisign keys, checked by
shipline and by the real minisign binary."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers.minisign import generate, minisign
from pipeline.approvaldocument import parse_expiry
from pipeline.exitcodes import ExitCode
from pipeline.signedapproval import RunFacts, SignedSpec, check_signed
from pipeline.signing.keys import format_secret_key, generate_key

SIGN = ("approve", "--key", "alice.key", "--approver", "alice", "--pipeline", "shop",
        "--environment", "production", "--version", "1.4.2")


def keygen(shipline_cli, folder: Path) -> None:
    result = shipline_cli("keygen", "-o", "alice", "--no-password", cwd=folder)
    assert result.exit_code == ExitCode.OK, result.stderr


def facts() -> RunFacts:
    return RunFacts("shop", "production", "1.4.2", time.time())


def test_approve_writes_document_and_signature(shipline_cli, tmp_path: Path) -> None:
    keygen(shipline_cli, tmp_path)

    result = shipline_cli(*SIGN, "--expires", "4h", "-o", "approval.json", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK
    assert result.stdout == (
        "approval by alice written to approval.json and approval.json.minisig\n"
    )
    document = json.loads((tmp_path / "approval.json").read_text())
    expires = parse_expiry(document["expires"]).timestamp()
    assert abs(expires - (time.time() + 4 * 3600)) < 120
    spec = SignedSpec({"alice": "alice.pub"}, file="approval.json")
    status = check_signed(spec, facts(), tmp_path)
    assert status.rejected == []
    assert status.approvers == ["alice"]


def test_approve_prints_combined_form(shipline_cli, tmp_path: Path, monkeypatch) -> None:
    keygen(shipline_cli, tmp_path)

    result = shipline_cli(*SIGN, "--expires", "2099-01-01T00:00:00+01:00", cwd=tmp_path)

    lines = result.stdout.splitlines()
    assert len(lines) == 5
    document = json.loads(lines[0])
    assert document["expires"] == "2098-12-31T23:00:00Z"
    assert list(document) == ["pipeline", "environment", "version", "approver", "expires"]
    assert lines[1] == "untrusted comment: approval by alice"
    monkeypatch.setenv("APPROVALS", result.stdout)
    spec = SignedSpec({"alice": "alice.pub"}, env="APPROVALS")
    assert check_signed(spec, facts(), tmp_path).approvers == ["alice"]


def test_approve_signature_verifies_with_minisign(shipline_cli, tmp_path: Path) -> None:
    keygen(shipline_cli, tmp_path)
    shipline_cli(*SIGN, "-o", "approval.json", cwd=tmp_path)

    result = minisign("-V", "-p", str(tmp_path / "alice.pub"),
                      "-m", str(tmp_path / "approval.json"))

    assert result.returncode == 0, result.stderr
    assert "Signature and comment signature verified" in result.stderr + result.stdout
    assert "pipeline:shop\tenvironment:production\tversion:1.4.2" in result.stdout


def test_approve_accepts_minisign_signature(tmp_path: Path) -> None:
    keys = generate(tmp_path)
    document = {"pipeline": "shop", "environment": "production", "version": "1.4.2",
                "approver": "alice", "expires": "2099-01-01T00:00:00Z"}
    (tmp_path / "approval.json").write_text(json.dumps(document) + "\n", encoding="utf-8")
    signed = minisign("-S", "-s", str(keys.secret), "-m", str(tmp_path / "approval.json"),
                      "-t", "approval of shop 1.4.2")
    assert signed.returncode == 0, signed.stderr
    spec = SignedSpec({"alice": "minisign.pub"}, file="approval.json")

    status = check_signed(spec, facts(), tmp_path)

    assert status.rejected == []
    assert status.approvers == ["alice"]


def test_approve_rejects_legacy_minisign_signature(tmp_path: Path) -> None:
    keys = generate(tmp_path)
    document = {"pipeline": "shop", "environment": "production", "version": "1.4.2",
                "approver": "alice", "expires": "2099-01-01T00:00:00Z"}
    (tmp_path / "approval.json").write_text(json.dumps(document) + "\n", encoding="utf-8")
    signed = minisign("-S", "-l", "-s", str(keys.secret), "-m", str(tmp_path / "approval.json"))
    assert signed.returncode == 0, signed.stderr
    spec = SignedSpec({"alice": "minisign.pub"}, file="approval.json")

    status = check_signed(spec, facts(), tmp_path)

    assert status.rejected == [
        f"{tmp_path / 'approval.json'}: invalid signature for approver 'alice': "
        f"{tmp_path / 'approval.json.minisig'}: legacy signature (algorithm 'Ed'); a "
        f"prehashed signature (algorithm 'ED') is required"
    ]


def test_approve_generate_key_points_to_keygen(shipline_cli, tmp_path: Path) -> None:
    result = shipline_cli("approve", "--generate-key", "alice", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: approve: --generate-key was removed; create the key pair with "
        "'shipline keygen --output alice'\n"
    )
    assert not (tmp_path / "alice.key").exists()


def test_approve_missing_options(shipline_cli, tmp_path: Path) -> None:
    result = shipline_cli("approve", "--key", "k", "--approver", "alice", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: approve: missing --pipeline, --environment, --version\n"
    )


def test_approve_invalid_expiry(shipline_cli, tmp_path: Path) -> None:
    keygen(shipline_cli, tmp_path)

    past = shipline_cli(*SIGN, "--expires", "2020-01-01T00:00:00Z", cwd=tmp_path)
    nonsense = shipline_cli(*SIGN, "--expires", "soon", cwd=tmp_path)

    assert past.exit_code == ExitCode.INVALID
    assert past.stderr == (
        "shipline: error: approve: --expires 2020-01-01T00:00:00Z is in the past\n"
    )
    assert nonsense.stderr == (
        "shipline: error: approve: --expires: invalid expiry 'soon': use an ISO 8601 "
        "date-time such as 2026-12-05T12:00:00Z, or a duration such as 4h\n"
    )


def test_approve_invalid_key(shipline_cli, tmp_path: Path) -> None:
    (tmp_path / "alice.key").write_text("not a key", encoding="utf-8")

    result = shipline_cli(*SIGN, cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: alice.key: the secret key line is not valid base64\n"
    )


def test_approve_password_protected_key(shipline_cli, tmp_path: Path, monkeypatch) -> None:
    key = generate_key()
    # Low scrypt limits keep the test fast; the file format is the same.
    text = format_secret_key(key, "correct horse", opslimit=1 << 20, memlimit=1 << 24)
    (tmp_path / "alice.key").write_text(text, encoding="utf-8")
    (tmp_path / "alice.pub").write_text(key.public_key.to_file_text(), encoding="utf-8")
    monkeypatch.setenv("SHIPLINE_KEY_PASSWORD", "wrong")

    wrong = shipline_cli(*SIGN, cwd=tmp_path)
    monkeypatch.setenv("SHIPLINE_KEY_PASSWORD", "correct horse")
    right = shipline_cli(*SIGN, "-o", "approval.json", cwd=tmp_path)

    assert wrong.exit_code == ExitCode.INVALID
    assert wrong.stderr == (
        "shipline: error: alice.key: wrong password (SHIPLINE_KEY_PASSWORD) for this key\n"
    )
    assert right.exit_code == ExitCode.OK, right.stderr
    spec = SignedSpec({"alice": "alice.pub"}, file="approval.json")
    assert check_signed(spec, facts(), tmp_path).approvers == ["alice"]
