"""The ``verify`` gate: a package's minisign signature, digest and version before a deploy.

It is a gate rather than a scan because it checks an artifact and passes or blocks,
like the other gates, and has no findings, severities or ignore lists. Like every
gate before the run's first deploy step, a failure blocks the run with exit 3.

With ``require_version_in_comment: true`` the trusted comment must name a version:
the step's ``version`` option, or else the version of the next deploy step in the
plan. ``shipline validate`` reports a step that has neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.diagnostics import Diagnostic
from pipeline.report import Outcome, StepReport
from pipeline.schema import StepSchema
from pipeline.signing.options import (
    KEYS_MISSING_MESSAGE,
    PACKAGE_PROPERTIES,
    keys_missing,
    package_check,
    sha256_problem,
)

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Step

logger = logging.getLogger("shipline")

GATE_TYPE = "verify"

#: The ``version`` option, which the ``package`` gate shares.
VERSION_PROPERTY: Mapping[str, Any] = {
    "title": "Version",
    "description": "The version the trusted comment must name when "
    "require_version_in_comment is true. Default: the version of the next deploy step.",
    "type": "string", "minLength": 1,
}

OPTIONS_SCHEMA = {
    "type": "object",
    "properties": {**PACKAGE_PROPERTIES, "version": VERSION_PROPERTY},
    "required": ["file"],
}


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="gate", type=GATE_TYPE, schema=OPTIONS_SCHEMA,
        description="Pass when a package has a valid minisign signature from a trusted "
        "key, and the expected digest and version if given.",
    )]


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Reject a gate without trusted keys, with an invalid digest after interpolation,
    or with a version requirement and no version."""
    found = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "gate" or step.type != GATE_TYPE:
                continue
            if keys_missing(step.options):
                found.append(Diagnostic(KEYS_MISSING_MESSAGE, step.mark, (*step.path, "gate")))
            problem = sha256_problem(step.options)
            if problem is not None:
                found.append(Diagnostic(problem, step.mark, (*step.path, "gate", "sha256")))
            if step.options.get("require_version_in_comment") and expected_version(
                plan, step
            ) is None:
                found.append(Diagnostic(
                    "require_version_in_comment is true, but there is no version to "
                    "compare: no deploy step follows this gate",
                    step.mark, (*step.path, "gate"),
                    hint="set 'version' on the gate",
                ))
    return found


@hookimpl
def shipline_run_gate(step: Step, context: RunContext) -> StepReport | None:
    if step.type != GATE_TYPE:
        return None

    from pipeline.signing import KeyFileError, VerificationError
    from pipeline.signing.package import check_package

    version = None
    if step.options.get("require_version_in_comment"):
        version = expected_version(context.plan, step)
    try:
        check = package_check(step.options, context.plan.file.parent, version)
        passed = check_package(check)
    except KeyFileError as exc:
        message = f"trusted keys could not be read: {exc}"
    except VerificationError as exc:
        message = str(exc)
    except OSError as exc:
        message = f"package check failed: cannot read {exc.filename}: {exc.strerror}"
    else:
        return StepReport(
            step.id, step.name, step.kind, Outcome.PASSED,
            message=f"{step.options['file']}: {passed[0]}", details="\n".join(passed),
        )

    logger.info("step %s: package %s not verified: %s", step.id, step.options["file"], message)
    return StepReport(step.id, step.name, step.kind, Outcome.FAILED, message=message)


def expected_version(plan: Plan, step: Step) -> str | None:
    """Return the gate's ``version`` option, or the version of the next deploy step."""
    if step.options.get("version"):
        return str(step.options["version"])
    seen = False
    for stage in plan.stages:
        for candidate in stage.steps:
            if candidate is step or candidate.id == step.id:
                seen = True
            elif seen and candidate.kind == "deploy" and candidate.options.get("version"):
                return str(candidate.options["version"])
    return None
