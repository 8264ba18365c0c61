"""The values a run hands to later CI steps: exit code, outcome, deployed version...

GitHub Actions receives them as step outputs (:mod:`pipeline.builtin.github_actions`)
and GitLab CI as a dotenv report (:mod:`pipeline.builtin.gitlab_ci`). Both use the
names below, in this order, followed by any other value that a plugin put into
``context.outputs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.exitcodes import ExitCode

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.runner import RunResult

#: The ``outcome`` output for each exit code.
OUTCOMES: Mapping[ExitCode, str] = {
    ExitCode.OK: "passed",
    ExitCode.FAILED: "failed",
    ExitCode.INVALID: "invalid",
    ExitCode.BLOCKED: "blocked",
    ExitCode.ROLLBACK_FAILED: "rollback_failed",
    ExitCode.LOCKED: "locked",
    ExitCode.INTERNAL_ERROR: "error",
    ExitCode.INTERRUPTED: "interrupted",
}

#: Output names in the order they are written.
STANDARD_NAMES = (
    "exit-code",
    "outcome",
    "deployed-version",
    "rolled-back",
    "environment-url",
    "report-path",
)


def run_outputs(result: RunResult, context: RunContext) -> dict[str, str]:
    """Collect the outputs of a finished run, every value masked.

    ``deployed-version`` is the version of the last deploy step that passed (empty
    when none did, and kept when a later failure rolled it back). ``rolled-back`` is
    ``true`` when any rollback ran. ``environment-url`` is the ``url`` of the
    environment of the last stage that ran against one (empty when it has none).
    ``report-path`` is the absolute path of the ``--junitxml`` report (empty without
    one).
    """
    plan = result.plan
    url = ""
    for stage in reversed(result.stages):
        if stage.skipped_reason is None and stage.stage.environment is not None:
            url = plan.environments[stage.stage.environment].url or ""
            break

    values = _standard(result.exit_code, context.config)
    values["environment-url"] = url
    for name, value in context.outputs.items():
        values[name] = value
    return {name: context.masker.mask(str(value)) for name, value in values.items()}


def invalid_outputs(config: Config) -> dict[str, str]:
    """Return the outputs of a command that stopped at an invalid pipeline file (exit 2)."""
    return _standard(ExitCode.INVALID, config)


def _standard(exit_code: ExitCode, config: Config) -> dict[str, str]:
    report = config.option("junitxml")
    report_path = str(Path(config.invocation_dir, report).absolute()) if report else ""

    values = dict.fromkeys(STANDARD_NAMES, "")
    values["exit-code"] = str(int(exit_code))
    values["outcome"] = OUTCOMES[exit_code]
    values["rolled-back"] = "false"
    values["report-path"] = report_path
    return values
