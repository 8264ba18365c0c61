"""The ``package`` gate: verify, optionally decrypt, and unpack a package for a deploy.

The gate checks the package file as stored (the encrypted file, when it is encrypted)
with the same checks as the ``verify`` gate, so nothing unverified reaches the age
decryption or the archive reader. It then decrypts it with ``decrypt:`` and unpacks
it (tar or zip) into a new temporary folder, which the deploy commands of a
``command`` target get as ``{package}`` while they deploy the version the package was
checked for. Deploying another version, as a rollback does, gets an empty
``{package}``. The folder is removed when the run ends.

A failure blocks the run (exit 3) when no deploy step has started yet, like any gate.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.builtin.verify_gate import VERSION_PROPERTY, expected_version
from pipeline.diagnostics import Diagnostic
from pipeline.errors import ShiplineError
from pipeline.report import Outcome, StepReport
from pipeline.schema import StepSchema
from pipeline.secretsources import register_key_content
from pipeline.signing.options import (
    KEYS_MISSING_MESSAGE,
    PACKAGE_PROPERTIES,
    keys_missing,
    sha256_problem,
)

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Step

logger = logging.getLogger("shipline")

GATE_TYPE = "package"
_VARIABLE = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
_BYTES = {"type": "integer", "minimum": 1}

DECRYPT_SCHEMA: Mapping[str, Any] = {
    "title": "Decrypt",
    "description": "Decrypt the package (age format) before unpacking it, with exactly one "
    "of an identity file, an environment variable that contains an identity, or an "
    "environment variable that contains the passphrase.",
    "type": "object",
    "properties": {
        "identity_file": {"type": "string", "minLength": 1, "title": "Identity file",
                          "description": "age identity file, relative to the pipeline "
                          "file's folder."},
        "identity_env": {**_VARIABLE, "title": "Identity variable",
                         "description": "Environment variable that contains age identities."},
        "passphrase_env": {**_VARIABLE, "title": "Passphrase variable",
                           "description": "Environment variable that contains the passphrase."},
    },
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
}

OPTIONS_SCHEMA = {
    "type": "object",
    "properties": {
        **PACKAGE_PROPERTIES,
        "version": {
            **VERSION_PROPERTY,
            "description": "The version the package is deployed as: deploy commands get "
            "{package} only while they deploy it, and require_version_in_comment checks it. "
            "Default: the version of the next deploy step.",
        },
        "decrypt": DECRYPT_SCHEMA,
        "max_member_size": {**_BYTES, "title": "Maximum member size",
                            "description": "Bytes one unpacked file may have. Default: 1 GiB."},
        "max_total_size": {**_BYTES, "title": "Maximum total size",
                           "description": "Bytes all unpacked files may have together. "
                           "Default: 4 GiB."},
        "max_members": {**_BYTES, "title": "Maximum members",
                        "description": "Entries the archive may have. Default: 100000."},
    },
    "required": ["file"],
}


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="gate", type=GATE_TYPE, schema=OPTIONS_SCHEMA,
        description="Verify a signed package, decrypt it if asked, and unpack it into a "
        "folder that deploy commands get as {package}.",
    )]


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Reject a package gate without trusted keys, a valid digest or a version."""
    found = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "gate" or step.type != GATE_TYPE:
                continue
            path = (*step.path, "gate")
            if keys_missing(step.options):
                found.append(Diagnostic(KEYS_MISSING_MESSAGE, step.mark, path))
            problem = sha256_problem(step.options)
            if problem is not None:
                found.append(Diagnostic(problem, step.mark, (*path, "sha256")))
            if expected_version(plan, step) is None:
                found.append(Diagnostic(
                    "no deploy step follows this package gate, so the package has no "
                    "version to be deployed as", step.mark, path,
                    hint="set 'version' on the gate",
                ))
    return found


@hookimpl
def shipline_run_gate(step: Step, context: RunContext) -> StepReport | None:
    if step.type != GATE_TYPE:
        return None

    import shutil
    import tempfile

    version = expected_version(context.plan, step) or ""
    workspace = Path(tempfile.mkdtemp(prefix="shipline-package-"))
    try:
        lines = prepare(step.options, context, version, workspace)
    except ShiplineError as exc:
        shutil.rmtree(workspace, ignore_errors=True)
        message = context.masker.mask(str(exc))
        logger.info("step %s: package %s rejected: %s", step.id, step.options["file"], message)
        return StepReport(step.id, step.name, step.kind, Outcome.FAILED, message=message)

    folder = workspace / "files"
    context.packages.append((version, folder))
    return StepReport(
        step.id, step.name, step.kind, Outcome.PASSED,
        message=f"{step.options['file']}: {lines[-1]}", details="\n".join(lines),
    )


def prepare(options: Mapping[str, Any], context: RunContext, version: str,
            workspace: Path) -> list[str]:
    """Verify, decrypt and unpack the package into ``workspace/files``.

    Returns one line per passed check or action. Raises a :class:`ShiplineError`
    whose message names the failed check: signature, sha256, version, decrypt or
    unpack.
    """
    from pipeline.packages.unpack import Limits, unpack
    from pipeline.signing import KeyFileError
    from pipeline.signing.options import package_check
    from pipeline.signing.package import check_package

    base = context.plan.file.parent
    require_version = bool(options.get("require_version_in_comment"))
    try:
        check = package_check(options, base, version if require_version else None)
    except KeyFileError as exc:
        raise ShiplineError(f"trusted keys could not be read: {exc}") from None
    lines = check_package(check)

    archive = check.file
    if options.get("decrypt"):
        archive = workspace / "decrypted"
        _decrypt(check.file, archive, options["decrypt"], base, context)
        lines.append("decrypt: done")
    else:
        _reject_encrypted(check.file)

    limits = Limits(**{key: int(options[key]) for key in
                       ("max_member_size", "max_total_size", "max_members") if key in options})
    try:
        count = unpack(archive, workspace / "files", limits)
    except ShiplineError as exc:
        raise ShiplineError(f"unpack failed: {exc}") from None
    finally:
        if archive != check.file:
            with contextlib.suppress(FileNotFoundError):
                archive.unlink()
    lines.append(f"unpacked {count} members into {workspace / 'files'}")
    return lines


def _decrypt(source: Path, target: Path, settings: Mapping[str, Any], base: Path,
             context: RunContext) -> None:
    from pipeline.encryption import EncryptionError
    from pipeline.encryption.files import decrypt_file, parse_identities

    try:
        if "passphrase_env" in settings:
            passphrase = _variable(str(settings["passphrase_env"]), context, identity=False)
            decrypt_file(source, target, passphrase=passphrase)
            return
        if "identity_env" in settings:
            name = str(settings["identity_env"])
            text = _variable(name, context, identity=True)
            identities = parse_identities(text, f"environment variable {name}")
        else:
            path = base / str(settings["identity_file"])
            identities = parse_identities(_read_identity(path, context), str(path))
        decrypt_file(source, target, identities=identities)
    except EncryptionError as exc:
        raise ShiplineError(f"decrypt failed: {exc}") from None


def _reject_encrypted(path: Path) -> None:
    """Raise a one-line error for an age file given without ``decrypt:``.

    The archive readers would otherwise report that every tar compression failed,
    which does not say that the file is encrypted.
    """
    from pipeline.encryption.files import age_header_line

    header = age_header_line(path)
    if header is not None:
        raise ShiplineError(
            f"unpack failed: {path}: an age-encrypted file (its first line is {header!r}), "
            "not a tar or zip archive; set 'decrypt:' on the gate with identity_file, "
            "identity_env or passphrase_env"
        )


def _variable(name: str, context: RunContext, *, identity: bool) -> str:
    """Return the value of variable ``name`` after registering it with the masker.

    A passphrase is registered whole. Of identities, only the key lines are, as for an
    identity file, because the masker also masks each word of a value, and the words
    of the comment lines (``# public key: age1...``) would be masked everywhere.
    """
    value = os.environ.get(name)
    if not value:
        raise ShiplineError(f"decrypt failed: environment variable {name} is not set or empty")

    if identity:
        register_key_content(context.masker, value)
    else:
        context.masker.add(value)
    return value


def _read_identity(path: Path, context: RunContext) -> str:
    """Read an identity file and register its key lines with the run's masker.

    Registering comes first, even for a file that is not UTF-8, because a deploy
    command may print the file later in the run.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ShiplineError(f"decrypt failed: {path}: identity file not found") from None
    except OSError as exc:
        raise ShiplineError(f"decrypt failed: {path}: cannot be read ({exc})") from None

    register_key_content(context.masker, data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ShiplineError(f"decrypt failed: {path}: cannot be read ({exc})") from None


@hookimpl
def shipline_run_finish(context: RunContext) -> None:
    """Remove the folders that package gates unpacked in this run."""
    import shutil

    for _version, folder in context.packages:
        shutil.rmtree(folder.parent, ignore_errors=True)
