"""pipeline.secretsources: secrets from the environment and from key files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.masking import MASK, Masker
from pipeline.secretsources import (
    MIN_ENVIRONMENT_SECRET_LENGTH,
    environment_secrets,
    read_key_file,
    register_environment,
)


def test_environment_secrets_by_name() -> None:
    environ = {
        "CI_JOB_TOKEN": "glcbt-64_abcdefgh",
        "DB_PASSWORD": "correct horse",
        "IMAGE_TAG": "1.4.2-abcdefgh",
        "PIP_KEYRING_PROVIDER": "auto",
    }

    assert environment_secrets(environ) == ["glcbt-64_abcdefgh", "correct horse"]


def test_environment_secrets_minimum_length() -> None:
    short = "x" * (MIN_ENVIRONMENT_SECRET_LENGTH - 1)
    exact = "y" * MIN_ENVIRONMENT_SECRET_LENGTH

    assert environment_secrets({"A_TOKEN": short, "B_TOKEN": exact}) == [exact]


def test_register_environment_masks_values() -> None:
    masker = Masker()

    register_environment(masker, {"DEPLOY_KEY": "k3y-v4lue-0123", "HOME": "/home/ci-user"})

    assert masker.mask("key k3y-v4lue-0123 in /home/ci-user") == f"key {MASK} in /home/ci-user"


def test_read_key_file_masks_each_line(tmp_path: Path) -> None:
    path = tmp_path / "deploy.key"
    path.write_text("untrusted comment: minisign secret key\nRWRTY0Iyabcdefghijkl\n",
                    encoding="utf-8")
    masker = Masker()

    data = read_key_file(path, masker)

    assert data == path.read_bytes()
    assert masker.mask("key RWRTY0Iyabcdefghijkl") == f"key {MASK}"


def test_read_key_file_binary_masks_base64(tmp_path: Path) -> None:
    secret = bytes(range(200, 232))
    path = tmp_path / "raw.key"
    path.write_bytes(secret)
    masker = Masker()

    read_key_file(path, masker)

    encoded = base64.b64encode(secret).decode()
    assert masker.mask(f"key={encoded}") == f"key={MASK}"


def test_read_key_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"

    with pytest.raises(UsageError) as caught:
        read_key_file(path, Masker())

    assert str(caught.value) == f"{path}: cannot read the key file: No such file or directory"


def test_read_key_file_leaves_comment_words_visible(tmp_path: Path) -> None:
    path = tmp_path / "age.key"
    path.write_text("# created: 2026-01-01T00:00:00Z\n# public key: age1qqqqexample\n"
                    "AGE-SECRET-KEY-1QQQQEXAMPLE\n", encoding="utf-8")
    masker = Masker()

    read_key_file(path, masker)

    assert masker.mask("public key AGE-SECRET-KEY-1QQQQEXAMPLE") == f"public key {MASK}"


def test_read_key_file_single_line_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "passphrase"
    path.write_text("correct horse battery\n", encoding="utf-8")
    masker = Masker()

    read_key_file(path, masker)

    assert masker.mask("pw: correct horse battery") == f"pw: {MASK}"
