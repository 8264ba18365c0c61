"""Signed approvals: documents, minisign signatures, and the ``approval`` gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.approval import ApprovalSpec
from pipeline.approvaldocument import Approval, parse_expiry, sign_approval
from pipeline.errors import ShiplineError
from pipeline.report import Outcome
from pipeline.signedapproval import RunFacts, SignedSpec, check_signed
from pipeline.signing.keys import SecretKey, generate_key
from pipeline.testing import run_pipeline

#: FakeClock's default start, 2027-01-15T08:00:00Z.
NOW = 1_800_000_000.0
FACTS = RunFacts("shop", "production", "1.4.2", NOW)
LATER = "2027-01-16T00:00:00Z"

#: An approval as signed: the document and its ``.minisig`` text.
Signed = tuple[str, str]


@pytest.fixture(scope="module")
def keys() -> dict[str, SecretKey]:
    return {name: generate_key() for name in ("alice", "bob", "carol")}


def write_public_keys(keys: dict[str, SecretKey], folder: Path) -> dict[str, str]:
    paths = {}
    for name, key in keys.items():
        (folder / f"{name}.pub").write_text(key.public_key.to_file_text(), encoding="utf-8")
        paths[name] = f"{name}.pub"
    return paths


def approval(key: SecretKey, approver: str = "alice", **changes: str) -> Signed:
    fields = {"pipeline": "shop", "environment": "production", "version": "1.4.2",
              "approver": approver, "expires": LATER, **changes}
    return sign_approval(Approval(**fields), key, NOW)


def combined(documents: list[Signed]) -> str:
    return "".join(document + signature for document, signature in documents)


def check(tmp_path: Path, keys: dict[str, SecretKey], documents: list[Signed],
          required: int = 1):
    approvers = write_public_keys({k: keys[k] for k in ("alice", "bob")}, tmp_path)
    (tmp_path / "approvals.json").write_text(combined(documents), encoding="utf-8")
    spec = SignedSpec(approvers, required=required, file="approvals.json")
    return check_signed(spec, FACTS, tmp_path)


# -- documents ---------------------------------------------------------------------------


def test_sign_approval_document_and_comment(keys) -> None:
    document, signature = approval(keys["alice"])

    assert document == (
        '{"pipeline": "shop", "environment": "production", "version": "1.4.2", '
        '"approver": "alice", "expires": "2027-01-16T00:00:00Z"}\n'
    )
    lines = signature.splitlines()
    assert lines[0] == "untrusted comment: approval by alice"
    assert lines[2] == ("trusted comment: timestamp:1800000000\tpipeline:shop\t"
                        "environment:production\tversion:1.4.2")


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


def tampered(signed: Signed) -> Signed:
    document, signature = signed
    return document.replace("1.4.2", "9.9.9"), signature


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
        (lambda k: approval(k["carol"], "carol"), "'carol' is not an approver of this gate"),
        (lambda k: approval(k["alice"], expires="tomorrow"),
         "invalid expiry 'tomorrow': use an ISO 8601 date-time such as 2026-12-05T12:00:00Z"),
    ],
)
def test_check_signed_rejects(tmp_path: Path, keys, make, problem: str) -> None:
    status = check(tmp_path, keys, [make(keys)])

    assert not status.approved
    assert status.rejected == [f"{tmp_path / 'approvals.json'}: {problem}"]


def test_check_signed_tampered_document(tmp_path: Path, keys) -> None:
    key_id = keys["alice"].public_key.key_id_hex

    status = check(tmp_path, keys, [tampered(approval(keys["alice"]))])

    source = tmp_path / "approvals.json"
    assert not status.approved
    assert status.rejected == [
        f"{source}: invalid signature for approver 'alice': the signature in {source} "
        f"(signature at line 2) does not match the file (key {key_id}); the file was "
        f"changed or the signature is for another file"
    ]


def test_check_signed_wrong_key(tmp_path: Path, keys) -> None:
    alice = keys["alice"].public_key.key_id_hex
    bob = keys["bob"].public_key.key_id_hex

    status = check(tmp_path, keys, [approval(keys["alice"], "bob")])

    source = tmp_path / "approvals.json"
    assert status.rejected == [
        f"{source}: invalid signature for approver 'bob': {source} (signature at line 2): "
        f"signed with key {alice}, which is not a trusted key (trusted: {bob})"
    ]


def test_check_signed_changed_trusted_comment(tmp_path: Path, keys) -> None:
    document, signature = approval(keys["alice"])
    lines = signature.splitlines()
    lines[2] = lines[2].replace("1.4.2", "1.4.3")

    status = check(tmp_path, keys, [(document, "\n".join(lines) + "\n")])

    source = tmp_path / "approvals.json"
    assert status.rejected == [
        f"{source}: invalid signature for approver 'alice': {source} (signature at line 2): "
        f"the trusted comment does not match its signature (key "
        f"{keys['alice'].public_key.key_id_hex}); it was changed after signing"
    ]


def test_check_signed_malformed_documents(tmp_path: Path, keys) -> None:
    write_public_keys(keys, tmp_path)
    document, signature = approval(keys["alice"])
    lines = signature.splitlines()
    (tmp_path / "a.json").write_text('{"approver": "alice"}\n' + signature, encoding="utf-8")
    (tmp_path / "b.json").write_text(document + "\n".join(lines[:3]) + "\n", encoding="utf-8")
    (tmp_path / "c.json").write_text("not json\n", encoding="utf-8")
    (tmp_path / "d.json").write_text(document + lines[0] + "\n!!\n" + lines[2] + "\n"
                                     + lines[3] + "\n", encoding="utf-8")
    spec = SignedSpec({"alice": "alice.pub"}, file=".")

    status = check_signed(spec, FACTS, tmp_path)

    assert status.rejected == [
        f"{tmp_path / 'a.json'}: missing or non-string field(s): pipeline, environment, "
        f"version, expires",
        f"{tmp_path / 'b.json'}: line 1: the document has no signature: expected the 4 "
        f"lines of a minisign signature after it and b.json.minisig not found",
        f"{tmp_path / 'c.json'}: line 1: expected an approval document, a JSON object on "
        f"one line",
        f"{tmp_path / 'd.json'}: invalid signature for approver 'alice': "
        f"{tmp_path / 'd.json'} (signature at line 2): line 2 is not valid base64",
    ]


def test_check_signed_minisig_next_to_document(tmp_path: Path, keys) -> None:
    write_public_keys(keys, tmp_path)
    document, signature = approval(keys["alice"])
    (tmp_path / "approval.json").write_text(document, encoding="utf-8")
    (tmp_path / "approval.json.minisig").write_text(signature, encoding="utf-8")
    spec = SignedSpec({"alice": "alice.pub"}, file="approval.json")

    status = check_signed(spec, FACTS, tmp_path)

    assert status.approvers == ["alice"]
    assert status.rejected == []


def test_check_signed_minisig_tampered(tmp_path: Path, keys) -> None:
    write_public_keys(keys, tmp_path)
    document, signature = tampered(approval(keys["alice"]))
    (tmp_path / "approval.json").write_text(document, encoding="utf-8")
    (tmp_path / "approval.json.minisig").write_text(signature, encoding="utf-8")
    spec = SignedSpec({"alice": "alice.pub"}, file="approval.json")

    status = check_signed(spec, FACTS, tmp_path)

    source = tmp_path / "approval.json"
    assert status.rejected == [
        f"{source}: invalid signature for approver 'alice': the signature in "
        f"{source}.minisig does not match the file (key "
        f"{keys['alice'].public_key.key_id_hex}); the file was changed or the signature is "
        f"for another file"
    ]


def test_check_signed_folder_and_env(tmp_path: Path, keys, monkeypatch) -> None:
    write_public_keys(keys, tmp_path)
    (tmp_path / "approvals").mkdir()
    (tmp_path / "approvals" / "alice.json").write_text(combined([approval(keys["alice"])]),
                                                       encoding="utf-8")
    (tmp_path / "approvals" / "notes.txt").write_text("ignored", encoding="utf-8")
    both = [approval(keys[name], name) for name in ("bob", "carol")]
    monkeypatch.setenv("APPROVALS", combined(both[:1]) + "\n" + combined(both[1:]))
    spec = SignedSpec({"alice": "alice.pub", "bob": "bob.pub", "carol": "carol.pub"},
                      required=3, file="approvals", env="APPROVALS")

    status = check_signed(spec, FACTS, tmp_path)

    assert status.rejected == []
    assert status.approved
    assert status.approvers == ["alice", "bob", "carol"]


def test_check_signed_keys_from_env(tmp_path: Path, keys, monkeypatch) -> None:
    (tmp_path / "approvals.json").write_text(combined([approval(keys["alice"])]),
                                             encoding="utf-8")
    monkeypatch.setenv("ALICE_PUBLIC_KEY", keys["alice"].public_key.to_base64())
    spec = SignedSpec({}, file="approvals.json", keys_env={"alice": "ALICE_PUBLIC_KEY"})

    status = check_signed(spec, FACTS, tmp_path)

    assert status.approvers == ["alice"]


def test_check_signed_key_variable_missing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ALICE_PUBLIC_KEY", raising=False)
    spec = SignedSpec({}, file="approvals.json", keys_env={"alice": "ALICE_PUBLIC_KEY"})

    with pytest.raises(ShiplineError) as caught:
        check_signed(spec, FACTS, tmp_path)

    assert str(caught.value) == (
        "environment variable ALICE_PUBLIC_KEY (public key of approver 'alice') is not set "
        "or empty; set it to the base64 line of their minisign public key"
    )


def test_check_signed_missing_public_key(tmp_path: Path) -> None:
    spec = SignedSpec({"alice": "alice.pub"}, file="a.json")

    with pytest.raises(ShiplineError) as caught:
        check_signed(spec, FACTS, tmp_path)

    assert str(caught.value) == f"{tmp_path / 'alice.pub'}: public key file not found"


def test_check_signed_pem_public_key(tmp_path: Path) -> None:
    (tmp_path / "alice.pub").write_text(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
        encoding="utf-8")
    spec = SignedSpec({"alice": "alice.pub"}, file="a.json")

    with pytest.raises(ShiplineError) as caught:
        check_signed(spec, FACTS, tmp_path)

    assert str(caught.value) == (
        f"{tmp_path / 'alice.pub'}: the public key line is not valid base64"
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
        ({"signed": {"keys": {"a": "a.pub"}, "keys_env": {"a": "A_KEY"}, "file": "x"}},
         "approval.signed.keys_env: approver 'a' is also in keys; keep one of the two"),
        ({"signed": {"keys_env": {"a": "A_KEY"}, "file": "x", "required": 2}},
         "approval.signed.required: 2 approvals required but only 1 approver(s) in keys; "
         "add keys or lower required"),
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


def run_gate(tmp_path: Path, keys, documents: list[Signed], required: int = 1):
    write_public_keys(keys, tmp_path)
    (tmp_path / "approvals").mkdir()
    for index, document in enumerate(documents):
        (tmp_path / "approvals" / f"{index}.json").write_text(combined([document]),
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
        f"public key of approver 'alice' not found: {tmp_path / 'alice.pub'} (create "
        f"the approver's key pair with 'shipline keygen --output NAME')",
        f"{tmp_path / 'shipline.yml'}:10:9: stages[0].steps[0].gate.signed.keys.bob: "
        f"public key of approver 'bob' not found: {tmp_path / 'bob.pub'} (create the "
        f"approver's key pair with 'shipline keygen --output NAME')",
    ]


def test_approval_gate_keys_from_env(tmp_path: Path, keys, monkeypatch) -> None:
    gate = GATE.replace("keys: {alice: alice.pub, bob: bob.pub}",
                        "keys_env: {alice: ALICE_PUBLIC_KEY}").replace("REQUIRED", "1")
    (tmp_path / "approvals").mkdir()
    (tmp_path / "approvals" / "alice.json").write_text(combined([approval(keys["alice"])]),
                                                       encoding="utf-8")
    monkeypatch.setenv("ALICE_PUBLIC_KEY", keys["alice"].public_key.to_file_text())

    run = run_pipeline(gate, directory=tmp_path)

    assert run.errors == ""
    assert run.exit_code == 0
    assert run.report("production/1").message == "approved: approved by alice"
