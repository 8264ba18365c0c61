"""Key files that CLI commands read are registered with the invocation's masker."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from helpers.age import age, keygen
from pipeline.cli import approve_command, decrypt_command, sign_command
from pipeline.config import Config
from pipeline.exitcodes import ExitCode
from pipeline.masking import MASK
from pipeline.plugins import PluginRegistry


def _config(**options: object) -> Config:
    return Config(options=argparse.Namespace(quiet=True, **options), registry=PluginRegistry())


def _key_lines(path: Path, prefix: str = "") -> list[str]:
    """Return the lines of a key file that hold key material: one word, no armor."""
    return [line for line in path.read_text().splitlines()
            if line and len(line.split()) == 1 and line.startswith(prefix)
            and not line.startswith("-----")]


def test_sign_masks_secret_key(shipline_cli, tmp_path: Path) -> None:
    shipline_cli("keygen", "-o", "release", "--no-password", cwd=tmp_path)
    (tmp_path / "app.tar").write_bytes(b"release 1.4.2\n")
    config = _config(file=str(tmp_path / "app.tar"), key=str(tmp_path / "release.key"),
                     comment="version:1.4.2", signature=None)

    assert sign_command.main(config) == ExitCode.OK

    [line] = _key_lines(tmp_path / "release.key")
    assert config.masker.mask(f"key {line}") == f"key {MASK}"


def test_decrypt_masks_identity_file(tmp_path: Path) -> None:
    key = keygen(tmp_path)
    (tmp_path / "app.tar").write_bytes(b"release 1.4.2\n")
    age("-r", key.recipient, "-o", str(tmp_path / "app.tar.age"), str(tmp_path / "app.tar"))
    config = _config(file=str(tmp_path / "app.tar.age"), identity=[str(key.identity)],
                     output=str(tmp_path / "out.tar"))

    assert decrypt_command.main(config) == ExitCode.OK

    [line] = _key_lines(key.identity, "AGE-SECRET-KEY-")
    assert config.masker.mask(f"id {line}") == f"id {MASK}"


def test_decrypt_masks_identity_variable(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    key = keygen(tmp_path)
    (tmp_path / "app.tar").write_bytes(b"release 1.4.2\n")
    age("-r", key.recipient, "-o", str(tmp_path / "app.tar.age"), str(tmp_path / "app.tar"))
    monkeypatch.setenv("SHIPLINE_AGE_IDENTITY", key.identity.read_text())
    monkeypatch.delenv("SHIPLINE_AGE_PASSPHRASE", raising=False)
    config = _config(file=str(tmp_path / "app.tar.age"), identity=[],
                     output=str(tmp_path / "out.tar"))

    assert decrypt_command.main(config) == ExitCode.OK

    [line] = _key_lines(key.identity, "AGE-SECRET-KEY-")
    assert config.masker.mask(f"id {line}") == f"id {MASK}"
    assert config.masker.mask("# public key: age1") == "# public key: age1"


def test_approve_masks_private_key(shipline_cli, tmp_path: Path) -> None:
    shipline_cli("keygen", "-o", "alice", "--no-password", cwd=tmp_path)
    config = _config(generate_key=None, key=tmp_path / "alice.key", approver="alice",
                     pipeline="shop", environment="production", version="1.4.2",
                     expires="4h", output=tmp_path / "approval.json")

    assert approve_command.main(config) == ExitCode.OK

    lines = _key_lines(tmp_path / "alice.key")
    assert lines
    for line in lines:
        assert config.masker.mask(f"key {line}") == f"key {MASK}"
