"""The ``package`` gate end to end: signed, encrypted packages deployed by a command target."""

from __future__ import annotations

import argparse
import io
import re
import tarfile
from pathlib import Path
from types import MappingProxyType

import pytest

from helpers.age import AgeKey, age, keygen
from pipeline.builtin.command_target import package_folder
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.encryption.files import encrypt_file
from pipeline.exitcodes import ExitCode
from pipeline.plan import Plan
from pipeline.plugins import PluginRegistry
from pipeline.signing.keys import SecretKey, generate_key
from pipeline.signing.signatures import sign_file

# Each instance's deploy copies VERSION from the unpacked package into INSTANCE.txt,
# or writes "no package" when {package} is empty (a rollback to another version).
DEPLOY = (
    "sh -c 'if [ -n \"$1\" ]; then cat \"$1/app/VERSION\"; else echo no package; fi "
    "> \"$2.txt\"' sh {package} {instance}"
)

PIPELINE = """\
    version: 1
    name: shop
    environments:
      prod:
        target:
          type: command
          instances: [web-1, web-2]
          deploy: {deploy}
    stages:
      - name: ship
        environment: prod
        steps:
          - gate:
              uses: package
              file: {file}
              public_keys: [release.pub]
              require_version_in_comment: true
{decrypt}
          - deploy: {{version: "1.4.2", strategy: rolling, batch: 1}}
"""


@pytest.fixture
def key(tmp_path: Path) -> SecretKey:
    secret = generate_key()
    (tmp_path / "release.pub").write_text(secret.public_key.to_file_text())
    return secret


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _sign(path: Path, key: SecretKey, comment: str = "version:1.4.2") -> None:
    Path(f"{path}.minisig").write_text(sign_file(path, key, comment))


def _pipeline(write_pipeline, file: str, decrypt: str = "") -> Path:
    quoted = "'" + DEPLOY.replace("'", "''") + "'"
    return write_pipeline(PIPELINE.format(deploy=quoted, file=file, decrypt=decrypt))


def test_package_gate_deploys_unpacked_files(shipline_cli, write_pipeline, tmp_path, key):
    package = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    _sign(package, key)
    path = _pipeline(write_pipeline, "shop.tar.gz")

    result = shipline_cli("run", str(path))

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert (tmp_path / "web-1.txt").read_text() == "1.4.2\n"
    assert (tmp_path / "web-2.txt").read_text() == "1.4.2\n"
    assert "PASSED   gate package" in result.stdout
    folder = re.search(r"unpacked 1 members into (\S+)", result.stdout)
    assert folder is not None
    assert Path(folder.group(1)).name == "files"
    assert not Path(folder.group(1)).parent.exists()


def test_package_gate_decrypts_with_identity(shipline_cli, write_pipeline, tmp_path, key):
    age_key: AgeKey = keygen(tmp_path)
    plain = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    encrypt_file(plain, tmp_path / "shop.tar.gz.age", recipients=[age_key.recipient])
    plain.unlink()
    _sign(tmp_path / "shop.tar.gz.age", key)
    path = _pipeline(write_pipeline, "shop.tar.gz.age",
                     "              decrypt: {identity_file: identity.txt}")

    result = shipline_cli("run", str(path))

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert (tmp_path / "web-1.txt").read_text() == "1.4.2\n"


def test_package_gate_masks_identity_file(shipline_cli, write_pipeline, tmp_path, key):
    age_key: AgeKey = keygen(tmp_path)
    secret_line = next(line for line in age_key.identity.read_text().splitlines()
                       if line.startswith("AGE-SECRET-KEY-"))
    plain = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    encrypt_file(plain, tmp_path / "shop.tar.gz.age", recipients=[age_key.recipient])
    _sign(tmp_path / "shop.tar.gz.age", key)
    deploy = f"'sh -c \"cat {age_key.identity}; exit 1\"'"
    path = write_pipeline(PIPELINE.format(
        deploy=deploy, file="shop.tar.gz.age",
        decrypt="              decrypt: {identity_file: identity.txt}"))

    result = shipline_cli("run", str(path), "--junitxml", str(tmp_path / "junit.xml"),
                          "--events", str(tmp_path / "events.jsonl"))

    assert result.exit_code == ExitCode.ROLLBACK_FAILED, result.stdout + result.stderr
    assert "web-1: deploy failed: exit code 1: ***" in result.stdout
    assert secret_line not in result.stdout + result.stderr
    assert secret_line not in (tmp_path / "junit.xml").read_text()
    assert secret_line not in (tmp_path / "events.jsonl").read_text()


def test_package_gate_masks_identity_variable(shipline_cli, write_pipeline, tmp_path, key):
    age_key: AgeKey = keygen(tmp_path)
    secret_line = next(line for line in age_key.identity.read_text().splitlines()
                       if line.startswith("AGE-SECRET-KEY-"))
    plain = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    encrypt_file(plain, tmp_path / "shop.tar.gz.age", recipients=[age_key.recipient])
    _sign(tmp_path / "shop.tar.gz.age", key)
    deploy = ("'sh -c \"echo public key: $(printf %s \\\"$DEPLOY_AGE_IDENTITY\\\" | tail -n 1); "
              "exit 1\"'")
    path = write_pipeline(PIPELINE.format(
        deploy=deploy, file="shop.tar.gz.age",
        decrypt="              decrypt: {identity_env: DEPLOY_AGE_IDENTITY}"))

    result = shipline_cli("run", str(path),
                          env={"DEPLOY_AGE_IDENTITY": age_key.identity.read_text()})

    assert result.exit_code == ExitCode.ROLLBACK_FAILED, result.stdout + result.stderr
    assert "web-1: deploy failed: exit code 1: public key: ***" in result.stdout
    assert secret_line not in result.stdout + result.stderr


def test_package_gate_decrypts_with_passphrase(shipline_cli, write_pipeline, tmp_path, key):
    plain = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    encrypt_file(plain, tmp_path / "shop.tar.gz.age", passphrase="deploy passphrase")
    _sign(tmp_path / "shop.tar.gz.age", key)
    path = _pipeline(write_pipeline, "shop.tar.gz.age",
                     "              decrypt: {passphrase_env: PACKAGE_PASSPHRASE}")

    result = shipline_cli("run", str(path), env={"PACKAGE_PASSPHRASE": "deploy passphrase"})

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert (tmp_path / "web-2.txt").read_text() == "1.4.2\n"
    assert "deploy passphrase" not in result.stdout + result.stderr


def test_package_gate_wrong_passphrase_blocks(shipline_cli, write_pipeline, tmp_path, key):
    plain = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    encrypt_file(plain, tmp_path / "shop.tar.gz.age", passphrase="deploy passphrase")
    _sign(tmp_path / "shop.tar.gz.age", key)
    path = _pipeline(write_pipeline, "shop.tar.gz.age",
                     "              decrypt: {passphrase_env: PACKAGE_PASSPHRASE}")

    result = shipline_cli("run", str(path), env={"PACKAGE_PASSPHRASE": "guess"})

    assert result.exit_code == ExitCode.BLOCKED
    assert (f"decrypt failed: {tmp_path}/shop.tar.gz.age: wrong passphrase (or a damaged "
            "file header)") in result.stdout
    assert not (tmp_path / "web-1.txt").exists()


@pytest.mark.parametrize("armor", [False, True])
def test_package_gate_age_file_without_decrypt(shipline_cli, write_pipeline, tmp_path, key,
                                               armor):
    age_key: AgeKey = keygen(tmp_path)
    plain = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    age("-r", age_key.recipient, *(["-a"] if armor else []), "-o",
        str(tmp_path / "shop.tar.gz.age"), str(plain))
    _sign(tmp_path / "shop.tar.gz.age", key)
    path = _pipeline(write_pipeline, "shop.tar.gz.age")

    result = shipline_cli("run", str(path))

    header = "-----BEGIN AGE ENCRYPTED FILE-----" if armor else "age-encryption.org/v1"
    assert result.exit_code == ExitCode.BLOCKED
    assert "BLOCKED  gate package" in result.stdout
    assert (f"unpack failed: {tmp_path}/shop.tar.gz.age: an "
            f"age-encrypted file (its first line is '{header}'), not a tar or zip "
            "archive; set 'decrypt:' on the gate with identity_file, identity_env or "
            "passphrase_env\n") in result.stdout
    assert "method gz" not in result.stdout
    assert not (tmp_path / "web-1.txt").exists()


def test_package_gate_tampered_package_blocks(shipline_cli, write_pipeline, tmp_path, key):
    package = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n"})
    _sign(package, key)
    _archive(package, {"app/VERSION": b"6.6.6\n"})
    path = _pipeline(write_pipeline, "shop.tar.gz")

    result = shipline_cli("run", str(path))

    assert result.exit_code == ExitCode.BLOCKED
    assert "BLOCKED  gate package" in result.stdout
    assert "signature check failed" in result.stdout
    assert not (tmp_path / "web-1.txt").exists()


def test_package_gate_malicious_archive_blocks(shipline_cli, write_pipeline, tmp_path, key):
    package = _archive(tmp_path / "shop.tar.gz", {"app/VERSION": b"1.4.2\n",
                                                  "../../escaped": b"x"})
    _sign(package, key)
    path = _pipeline(write_pipeline, "shop.tar.gz")

    result = shipline_cli("run", str(path))

    assert result.exit_code == ExitCode.BLOCKED
    assert ("unpack failed: " f"{tmp_path}/shop.tar.gz: member '../../escaped': '..' in the "
            "path; names must stay inside the folder") in result.stdout
    assert not (tmp_path.parent / "escaped").exists()
    assert not (tmp_path / "web-1.txt").exists()


def test_package_gate_validate_needs_version(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: package, file: shop.tar.gz, public_keys: [k.pub]}
        """)

    result = shipline_cli("validate", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:6:9: stages[0].steps[0].gate: no deploy step follows this package gate, so "
        "the package has no version to be deployed as (set 'version' on the gate)\n"
    )


def test_package_gate_validate_decrypt_one_source(shipline_cli, write_pipeline):
    path = write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate:
                  uses: package
                  file: shop.tar.gz.age
                  public_keys: [k.pub]
                  version: "1.4.2"
                  decrypt: {identity_file: id.txt, passphrase_env: PASS}
        """)

    result = shipline_cli("validate", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:11:20: stages[0].steps[0].gate.decrypt: must contain at most 1 key, got 2\n"
    )


def test_package_folder_only_for_its_version(tmp_path: Path) -> None:
    context = _context(tmp_path)
    context.packages.append(("1.4.1", tmp_path / "old"))
    context.packages.append(("1.4.2", tmp_path / "new"))

    assert package_folder(context, "1.4.2") == str(tmp_path / "new")
    assert package_folder(context, "1.4.1") == str(tmp_path / "old")
    assert package_folder(context, "1.3.0") == ""


def _context(folder: Path) -> RunContext:
    plan = Plan(
        name="shop", file=folder / "shipline.yml", stages=(),
        environments=MappingProxyType({}), analyses=MappingProxyType({}), notifications=(),
        state=MappingProxyType({}),
    )
    return RunContext(plan=plan, config=Config(options=argparse.Namespace(),
                                               registry=PluginRegistry()))
