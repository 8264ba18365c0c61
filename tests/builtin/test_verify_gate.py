"""The ``verify`` gate: signature, digest and version checks of a package before a deploy."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from helpers import stepplugin
from helpers.minisign import generate, minisign
from pipeline.builtin import verify_gate
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.exitcodes import ExitCode
from pipeline.plan import Plan, Step, freeze
from pipeline.plugins import PluginRegistry
from pipeline.report import Outcome
from pipeline.signing.keys import SecretKey, generate_key
from pipeline.signing.package import comment_names_version
from pipeline.signing.signatures import sign_file


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()


@pytest.fixture
def key(tmp_path: Path) -> SecretKey:
    secret = generate_key()
    (tmp_path / "release.pub").write_text(secret.public_key.to_file_text())
    return secret


def _package(folder: Path, key: SecretKey | None, comment: str = "version:1.4.2") -> Path:
    path = folder / "app.tar"
    path.write_bytes(b"release 1.4.2\n")
    if key is not None:
        Path(f"{path}.minisig").write_text(sign_file(path, key, comment))
    return path


def _context(folder: Path) -> RunContext:
    plan = Plan(
        name="shop", file=folder / "shipline.yml", stages=(),
        environments=MappingProxyType({}), analyses=MappingProxyType({}), notifications=(),
        state=MappingProxyType({}),
    )
    config = Config(options=argparse.Namespace(), registry=PluginRegistry())
    return RunContext(plan=plan, config=config)


def _run(folder: Path, options: Mapping[str, Any]):
    step = Step(id="check/0", name="gate verify", kind="gate", type="verify",
                options=freeze(options), plugin="verify", stage="check")
    report = verify_gate.shipline_run_gate(step, _context(folder))
    assert report is not None
    return report


def test_verify_gate_passes(tmp_path: Path, key: SecretKey) -> None:
    _package(tmp_path, key)

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"]})

    assert report.outcome is Outcome.PASSED
    assert report.message == f"app.tar: signature: verified with key {key.public_key.key_id_hex}"
    assert report.details == (
        f"signature: verified with key {key.public_key.key_id_hex}\n"
        "trusted comment: version:1.4.2"
    )


def test_verify_gate_minisign_signature(tmp_path: Path) -> None:
    keys = generate(tmp_path)
    package = _package(tmp_path, None)
    minisign("-S", "-W", "-s", str(keys.secret), "-m", str(package))

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["minisign.pub"]})

    assert report.outcome is Outcome.PASSED, report.message


def test_verify_gate_keys_from_environment(
    tmp_path: Path, key: SecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = generate_key()
    monkeypatch.setenv("RELEASE_KEYS", f"{other.public_key.to_base64()}\n"
                       f"{key.public_key.to_file_text()}")
    _package(tmp_path, key)

    report = _run(tmp_path, {"file": "app.tar", "public_keys_env": "RELEASE_KEYS"})

    assert report.outcome is Outcome.PASSED, report.message


def test_verify_gate_keys_variable_missing(tmp_path: Path, key: SecretKey,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELEASE_KEYS", raising=False)
    _package(tmp_path, key)

    report = _run(tmp_path, {"file": "app.tar", "public_keys_env": "RELEASE_KEYS"})

    assert report.outcome is Outcome.FAILED
    assert report.message == (
        "trusted keys could not be read: environment variable RELEASE_KEYS (public_keys_env) "
        "is not set or empty; set it to the trusted minisign public keys, one per line"
    )


def test_verify_gate_missing_key_file(tmp_path: Path, key: SecretKey) -> None:
    _package(tmp_path, key)

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["other.pub"]})

    assert report.outcome is Outcome.FAILED
    assert report.message == (
        f"trusted keys could not be read: {tmp_path}/other.pub: public key file not found"
    )


def test_verify_gate_tampered_package(tmp_path: Path, key: SecretKey) -> None:
    package = _package(tmp_path, key)
    package.write_bytes(b"release 6.6.6\n")

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"]})

    assert report.outcome is Outcome.FAILED
    assert report.message == (
        f"signature check failed: {package}: the signature in {package}.minisig does not "
        f"match the file (key {key.public_key.key_id_hex}); the file was changed or the "
        "signature is for another file"
    )


def test_verify_gate_untrusted_signer(tmp_path: Path, key: SecretKey) -> None:
    stranger = generate_key()
    package = _package(tmp_path, stranger)

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"]})

    assert report.outcome is Outcome.FAILED
    assert report.message == (
        f"signature check failed: {package}.minisig: signed with key "
        f"{stranger.public_key.key_id_hex}, which is not a trusted key (trusted: "
        f"{key.public_key.key_id_hex})"
    )


def test_verify_gate_missing_signature(tmp_path: Path, key: SecretKey) -> None:
    package = _package(tmp_path, None)

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"]})

    assert report.outcome is Outcome.FAILED
    assert report.message == (
        f"signature check failed: {package}.minisig: signature file not found"
    )


def test_verify_gate_missing_package(tmp_path: Path, key: SecretKey) -> None:
    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"]})

    assert report.outcome is Outcome.FAILED
    assert report.message == f"package check failed: {tmp_path}/app.tar: file not found"


def test_verify_gate_other_signature_path(tmp_path: Path, key: SecretKey) -> None:
    package = _package(tmp_path, key)
    Path(f"{package}.minisig").rename(tmp_path / "app.sig")

    report = _run(tmp_path, {"file": "app.tar", "signature": "app.sig",
                             "public_keys": ["release.pub"]})

    assert report.outcome is Outcome.PASSED, report.message


def test_verify_gate_sha256_matches(tmp_path: Path, key: SecretKey) -> None:
    package = _package(tmp_path, key)
    digest = hashlib.sha256(package.read_bytes()).hexdigest()

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"],
                             "sha256": digest.upper()})

    assert report.outcome is Outcome.PASSED, report.message
    assert report.details.splitlines()[-1] == f"sha256: {digest}"


def test_verify_gate_sha256_and_version_mismatch(tmp_path: Path, key: SecretKey) -> None:
    package = _package(tmp_path, key, comment="version:1.4.1")
    actual = hashlib.sha256(package.read_bytes()).hexdigest()

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"],
                             "sha256": "0" * 64, "require_version_in_comment": True,
                             "version": "1.4.2"})

    assert report.outcome is Outcome.FAILED
    assert report.message.splitlines() == [
        f"sha256 check failed: {package} has sha256 {actual}, expected {'0' * 64}",
        "version check failed: the trusted comment 'version:1.4.1' does not name version "
        "1.4.2; sign with a trusted comment that contains 'version:1.4.2'",
    ]


def test_verify_gate_version_in_comment(tmp_path: Path, key: SecretKey) -> None:
    _package(tmp_path, key, comment="shop build:77 version:1.4.2")

    report = _run(tmp_path, {"file": "app.tar", "public_keys": ["release.pub"],
                             "require_version_in_comment": True, "version": "1.4.2"})

    assert report.outcome is Outcome.PASSED, report.message
    assert report.details.splitlines()[-1] == "version: 1.4.2 is named in the trusted comment"


@pytest.mark.parametrize(
    ("comment", "named"),
    [
        ("version:1.4.2", True),
        ("shop 1.4.2", True),
        ("tag:1.4.2\tbuild:9", True),
        ("version:1.4.2-rc1", False),
        ("version:11.4.2", False),
        ("timestamp:1800000000\tfile:app-1.4.2.tar\thashed", False),
        ("", False),
    ],
)
def test_comment_names_version(comment: str, named: bool) -> None:
    assert comment_names_version(comment, "1.4.2") is named


PIPELINE = """\
    version: 1
    name: shop
    environments:
      prod: {{target: {{type: none}}}}
    stages:
      - name: ship
        environment: prod
        steps:
          - gate:
              uses: verify
              file: app.tar
              public_keys: [release.pub]
              require_version_in_comment: true
          - deploy: {{strategy: record, version: "{version}"}}
"""


def test_verify_gate_run_deploys_signed_version(shipline_cli, write_pipeline, tmp_path,
                                                key: SecretKey):
    path = write_pipeline(PIPELINE.format(version="1.4.2"))
    _package(tmp_path, key, comment="version:1.4.2")

    result = shipline_cli("run", "-p", "helpers.stepplugin", str(path))

    assert result.exit_code == ExitCode.OK, result.stdout
    assert ("deploy", "1.4.2") in stepplugin.EVENTS


def test_verify_gate_run_blocks_other_version(shipline_cli, write_pipeline, tmp_path,
                                              key: SecretKey):
    path = write_pipeline(PIPELINE.format(version="1.5.0"))
    _package(tmp_path, key, comment="version:1.4.2")

    result = shipline_cli("run", "-p", "helpers.stepplugin", str(path))

    assert result.exit_code == ExitCode.BLOCKED
    assert "BLOCKED  gate verify" in result.stdout
    assert "version check failed: the trusted comment 'version:1.4.2' does not name " \
        "version 1.5.0" in result.stdout
    assert [event for event in stepplugin.EVENTS if event[0] == "deploy"] == []


def test_verify_gate_run_two_failures_indented(shipline_cli, write_pipeline, tmp_path,
                                               key: SecretKey):
    text = PIPELINE.format(version="1.5.0").replace(
        "require_version_in_comment: true",
        "require_version_in_comment: true\n              sha256: " + "0" * 64)
    path = write_pipeline(text)
    _package(tmp_path, key, comment="version:1.4.2")

    result = shipline_cli("run", "-p", "helpers.stepplugin", str(path))

    assert result.exit_code == ExitCode.BLOCKED, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    blocked = next(number for number, line in enumerate(lines)
                   if line.startswith("  BLOCKED  gate verify"))
    assert "): sha256 check failed: " in lines[blocked]
    assert lines[blocked + 1] == (
        "      version check failed: the trusted comment 'version:1.4.2' does not name "
        "version 1.5.0; sign with a trusted comment that contains 'version:1.5.0'"
    )


def test_verify_gate_validate_needs_version(shipline_cli, write_pipeline, tmp_path):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: verify, file: app.tar, public_keys: [k.pub],
                       require_version_in_comment: true}
        """)

    result = shipline_cli("validate", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:6:9: stages[0].steps[0].gate: require_version_in_comment is true, but "
        "there is no version to compare: no deploy step follows this gate (set 'version' "
        "on the gate)\n"
    )


def test_verify_gate_validate_needs_keys(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: verify, file: app.tar}
        """)

    result = shipline_cli("validate", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:6:9: stages[0].steps[0].gate: no trusted public key: set public_keys, "
        "public_keys_env or both\n"
    )


def test_verify_gate_validate_sha256_pattern(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: verify, file: app.tar, public_keys: [k.pub], sha256: abc}
        """)

    result = shipline_cli("validate", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:6:75: stages[0].steps[0].gate.sha256: 'abc' is not a valid SHA-256 digest: "
        "use 64 hex digits or a ${VAR} reference\n"
    )


def test_verify_gate_validate_interpolated_sha256(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: verify, file: app.tar, public_keys: [k.pub], sha256: "${SHA}"}
        """)

    result = shipline_cli("validate", str(path), env={"SHA": "abc"})

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:6:9: stages[0].steps[0].gate.sha256: sha256 'abc' is not a SHA-256 digest: "
        "expected 64 hex digits\n"
    )
