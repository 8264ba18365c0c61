"""Signed approvals: documents, keys, and the ``approval`` gate that counts them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.approval import ApprovalSpec
from pipeline.errors import ShiplineError
from pipeline.report import Outcome
from pipeline.signedapproval import (
    Approval,
    RunFacts,
    SignedSpec,
    check_signed,
    parse_expiry,
    sign_approval,
    signed_bytes,
)
from pipeline.testing import run_pipeline

#: FakeClock's default start, 2027-01-15T08:00:00Z.
NOW = 1_800_000_000.0
FACTS = RunFacts("shop", "production", "1.4.2", NOW)
LATER = "2027-01-16T00:00:00Z"


@pytest.fixture(scope="module")
def keys() -> dict[str, Ed25519PrivateKey]:
    return {name: Ed25519PrivateKey.generate() for name in ("alice", "bob", "carol")}


def write_public_keys(keys: dict[str, Ed25519PrivateKey], folder: Path) -> dict[str, str]:
    paths = {}
    for name, key in keys.items():
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        (folder / f"{name}.pub").write_bytes(pem)
        paths[name] = f"{name}.pub"
    return paths


def approval(key: Ed25519PrivateKey, approver: str = "alice", **changes: str) -> Approval:
    fields = {"pipeline": "shop", "environment": "production", "version": "1.4.2",
              "approver": approver, "expires": LATER, **changes}
    return sign_approval(key, **fields)


def check(tmp_path: Path, keys: dict[str, Ed25519PrivateKey], documents: list[Approval],
          required: int = 1):
    approvers = write_public_keys({k: keys[k] for k in ("alice", "bob")}, tmp_path)
    (tmp_path / "approvals.json").write_text(
        "\n".join(document.to_json() for document in documents), encoding="utf-8")
    spec = SignedSpec(approvers, required=required, file="approvals.json")
    return check_signed(spec, FACTS, tmp_path)


# -- documents ---------------------------------------------------------------------------


def test_signed_bytes_cover_fields_only(keys) -> None:
    document = approval(keys["alice"])

    assert signed_bytes(document) == (
        b'shipline-approval-v1\n{"approver":"alice","environment":"production",'
        b'"expires":"2027-01-16T00:00:00Z","pipeline":"shop","version":"1.4.2"}'
    )
    assert signed_bytes(replace(document, signature="x")) == signed_bytes(document)


def test_parse_expiry_needs_time_zone() -> None:
    assert parse_expiry("2027-01-16T00:00:00Z").timestamp() == NOW + 16 * 3600

    with pytest.raises(ValueError) as caught:
        parse_expiry("2027-01-16T00:00:00")

    assert str(caught.value) == (
        "invalid expiry '2027-01-16T00:00:00': add a time zone, for example Z for UTC"
    )


# -- counting ----------------------------------------------------------------------------


def test_check_signed_valid_approval(tmp_path: Path, keys) -> None:
    status = check(tmp_path, keys, [approval(keys["alice"])])

    assert status.approved
    assert status.approvers == ["alice"]
    assert status.summary() == "approved by alice"


def test_check_signed_required_count(tmp_path: Path, keys) -> None:
    one = check(tmp_path, keys, [approval(keys["alice"])], required=2)
    two = check(tmp_path, keys, [approval(keys["alice"]), approval(keys["bob"], "bob")],
                required=2)

    assert not one.approved
    assert two.approved
    assert two.approvers == ["alice", "bob"]


def test_check_signed_same_approver_counts_once(tmp_path: Path, keys) -> None:
    status = check(tmp_path, keys, [approval(keys["alice"]), approval(keys["alice"])],
                   required=2)

    assert not status.approved
    assert status.summary() == (
        f"approved by alice; {tmp_path / 'approvals.json'} #2: alice approved twice; "
        f"counted once"
    )


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda k: approval(k["alice"], expires="2027-01-15T07:59:59Z"),
         "approval by 'alice' expired at 2027-01-15T07:59:59Z"),
        (lambda k: approval(k["alice"], version="1.4.3"), "approves version '1.4.3', not '1.4.2'"),
        (lambda k: approval(k["alice"], environment="staging"),
         "approves environment 'staging', not 'production'"),
        (lambda k: approval(k["alice"], pipeline="other"),
         "approves pipeline 'other', not 'shop'"),
        (lambda k: replace(approval(k["alice"], version="1.4.2"), version="9.9.9"),
         "invalid signature for approver 'alice'"),
        (lambda k: approval(k["alice"], "bob"), "invalid signature for approver 'bob'"),
        (lambda k: approval(k["carol"], "carol"), "'carol' is not an approver of this gate"),
        (lambda k: replace(approval(k["alice"]), signature="not base64!"),
         "invalid signature for approver 'alice'"),
        (lambda k: approval(k["alice"], expires="tomorrow"),
         "invalid expiry 'tomorrow': use an ISO 8601 date-time such as 2026-12-05T12:00:00Z"),
    ],
)
def test_check_signed_rejects(tmp_path: Path, keys, make, problem: str) -> None:
    status = check(tmp_path, keys, [make(keys)])

    assert not status.approved
    assert status.rejected == [f"{tmp_path / 'approvals.json'}: {problem}"]


def test_check_signed_malformed_documents(tmp_path: Path, keys) -> None:
    write_public_keys(keys, tmp_path)
    (tmp_path / "a.json").write_text('{"approver": "alice"}\nnot json\n', encoding="utf-8")
    spec = SignedSpec({"alice": "alice.pub"}, file="a.json")

    status = check_signed(spec, FACTS, tmp_path)

    assert status.rejected == [
        f"{tmp_path / 'a.json'}: line 2 is not valid JSON: Expecting value",
        f"{tmp_path / 'a.json'} #1: missing or non-string field(s): pipeline, environment, "
        f"version, expires, signature",
    ]


def test_check_signed_folder_and_env(tmp_path: Path, keys, monkeypatch) -> None:
    write_public_keys(keys, tmp_path)
    (tmp_path / "approvals").mkdir()
    (tmp_path / "approvals" / "alice.json").write_text(approval(keys["alice"]).to_json(),
                                                       encoding="utf-8")
    (tmp_path / "approvals" / "notes.txt").write_text("ignored", encoding="utf-8")
    both = [json.loads(approval(keys[name], name).to_json()) for name in ("bob", "carol")]
    monkeypatch.setenv("APPROVALS", json.dumps(both))
    spec = SignedSpec({"alice": "alice.pub", "bob": "bob.pub", "carol": "carol.pub"},
                      required=3, file="approvals", env="APPROVALS")

    status = check_signed(spec, FACTS, tmp_path)

    assert status.approved
    assert status.approvers == ["alice", "bob", "carol"]


def test_check_signed_missing_public_key(tmp_path: Path) -> None:
    spec = SignedSpec({"alice": "alice.pub"}, file="a.json")

    with pytest.raises(ShiplineError) as caught:
        check_signed(spec, FACTS, tmp_path)

    assert str(caught.value) == (
        f"cannot read public key {tmp_path / 'alice.pub'}: No such file or directory"
    )


# -- the spec ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"signed": {"keys": {"a": "a.pub"}, "file": "x"}, "file": "flag"},
         "approval: 'signed' cannot be combined with 'file' or 'env', which approve without "
         "a signature; move them under 'signed'"),
        ({"signed": {"keys": {}, "file": "x"}},
         "approval.signed.keys: name at least one approver and their key"),
        ({"signed": {"keys": {"a": "a.pub"}, "file": "x", "required": 2}},
         "approval.signed.required: 2 approvals required but only 1 approver(s) in keys; "
         "add keys or lower required"),
        ({"signed": {"keys": {"a": "a.pub"}}},
         "approval.signed: give a 'file' or an 'env' variable to read approvals from"),
    ],
)
def test_approval_spec_signed_invalid(value: dict[str, object], message: str) -> None:
    with pytest.raises(ShiplineError) as caught:
        ApprovalSpec.parse(value)

    assert str(caught.value) == message


# -- the gate ----------------------------------------------------------------------------

GATE = """\
version: 1
name: shop
environments:
  production:
    target: {type: fake, version: "1.4.1"}
stages:
  - name: production
    environment: production
    steps:
      - gate:
          uses: approval
          timeout: 30s
          interval: 10s
          signed:
            keys: {alice: alice.pub, bob: bob.pub}
            required: REQUIRED
            file: approvals
            version: "1.4.2"
      - deploy: {version: "1.4.2", strategy: rolling}
"""


def run_gate(tmp_path: Path, keys, documents: list[Approval], required: int = 1):
    write_public_keys(keys, tmp_path)
    (tmp_path / "approvals").mkdir()
    for index, document in enumerate(documents):
        (tmp_path / "approvals" / f"{index}.json").write_text(document.to_json(),
                                                              encoding="utf-8")
    return run_pipeline(GATE.replace("REQUIRED", str(required)), directory=tmp_path)


def test_approval_gate_passes(tmp_path: Path, keys) -> None:
    run = run_gate(tmp_path, keys, [approval(keys["alice"])])

    assert run.errors == ""
    assert run.exit_code == 0
    assert run.report("production/1").message == "approved: approved by alice"
    assert run.targets["production"].version("fake-1") == "1.4.2"


def test_approval_gate_blocks_without_enough(tmp_path: Path, keys) -> None:
    run = run_gate(tmp_path, keys, [approval(keys["alice"]), approval(keys["alice"])],
                   required=2)

    report = run.report("production/1")
    assert run.exit_code == 3
    assert report.outcome == Outcome.BLOCKED
    assert report.message == (
        "not approved within 30s: add 2 signed approvals from different approvers (in "
        "approvals) with 'shipline approve' to approve (approved by alice; "
        f"{tmp_path / 'approvals' / '1.json'}: alice approved twice; counted once)"
    )


def test_approval_gate_missing_key_fails_validation(tmp_path: Path) -> None:
    run = run_pipeline(GATE.replace("REQUIRED", "1"), directory=tmp_path)

    assert run.exit_code == 2
    assert run.errors.splitlines() == [
        f"{tmp_path / 'shipline.yml'}:10:9: stages[0].steps[0].gate.signed.keys.alice: "
        f"public key of approver 'alice' not found: {tmp_path / 'alice.pub'} (create it "
        f"with 'shipline approve --generate-key NAME')",
        f"{tmp_path / 'shipline.yml'}:10:9: stages[0].steps[0].gate.signed.keys.bob: "
        f"public key of approver 'bob' not found: {tmp_path / 'bob.pub'} (create it with "
        f"'shipline approve --generate-key NAME')",
    ]
