"""``shipline approve``: key pairs and signed approval documents."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from pipeline.exitcodes import ExitCode
from pipeline.signedapproval import RunFacts, SignedSpec, check_signed, parse_expiry

SIGN = ("approve", "--key", "alice.key", "--approver", "alice", "--pipeline", "shop",
        "--environment", "production", "--version", "1.4.2")


def test_approve_generate_key(shipline_cli, tmp_path: Path) -> None:
    result = shipline_cli("approve", "--generate-key", "alice", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK
    assert result.stdout == (
        "wrote alice.key (keep it secret) and alice.pub (add it to 'keys')\n"
    )
    assert stat.S_IMODE((tmp_path / "alice.key").stat().st_mode) == 0o600
    assert (tmp_path / "alice.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_approve_generate_key_keeps_existing(shipline_cli, tmp_path: Path) -> None:
    (tmp_path / "alice.pub").write_text("mine", encoding="utf-8")

    result = shipline_cli("approve", "--generate-key", "alice", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: approve: alice.pub already exists; remove it or pick another name\n"
    )
    assert not (tmp_path / "alice.key").exists()


def test_approve_signs_document_that_verifies(shipline_cli, tmp_path: Path) -> None:
    shipline_cli("approve", "--generate-key", "alice", cwd=tmp_path)

    result = shipline_cli(*SIGN, "--expires", "4h", "-o", "approval.json", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK
    assert result.stdout == "approval by alice written to approval.json\n"
    document = json.loads((tmp_path / "approval.json").read_text())
    expires = parse_expiry(document["expires"]).timestamp()
    assert abs(expires - (time.time() + 4 * 3600)) < 120
    spec = SignedSpec({"alice": "alice.pub"}, file="approval.json")
    facts = RunFacts("shop", "production", "1.4.2", time.time())
    assert check_signed(spec, facts, tmp_path).approvers == ["alice"]


def test_approve_prints_to_stdout(shipline_cli, tmp_path: Path) -> None:
    shipline_cli("approve", "--generate-key", "alice", cwd=tmp_path)

    result = shipline_cli(*SIGN, "--expires", "2099-01-01T00:00:00+01:00", cwd=tmp_path)

    document = json.loads(result.stdout)
    assert document["expires"] == "2098-12-31T23:00:00Z"
    assert list(document) == ["pipeline", "environment", "version", "approver", "expires",
                              "signature"]


def test_approve_missing_options(shipline_cli, tmp_path: Path) -> None:
    result = shipline_cli("approve", "--key", "k", "--approver", "alice", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: approve: missing --pipeline, --environment, --version (or use "
        "--generate-key)\n"
    )


def test_approve_invalid_expiry(shipline_cli, tmp_path: Path) -> None:
    shipline_cli("approve", "--generate-key", "alice", cwd=tmp_path)

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
    assert result.stderr.startswith("shipline: error: invalid private key alice.key: ")
