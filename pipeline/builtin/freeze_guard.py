"""Enforce environments' ``freeze:`` windows on deploy steps, and ``--break-glass``.

When a deploy step starts in a stage whose environment has a window that contains the
run clock's current time, the step is blocked (outcome ``blocked``, exit 3) and its
message names every such window. ``shipline run --break-glass REASON`` lets the deploy
go ahead: the override is logged as a warning, added to the step's report (details and
``data["break_glass"]``) and passed to the ``shipline_break_glass`` hook. Windows are
described in :mod:`pipeline.freeze`; ``shipline validate`` reports invalid ones.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import TYPE_CHECKING

from pipeline import hookimpl
from pipeline.diagnostics import Diagnostic
from pipeline.freeze import ActiveWindow, active_windows, freeze_problems, parse_windows
from pipeline.report import Outcome, StepReport

if TYPE_CHECKING:
    import argparse

    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Step

logger = logging.getLogger("shipline")


@hookimpl
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--break-glass", metavar="REASON", type=_reason,
        help="deploy even inside a freeze window; REASON is recorded in the report",
    )


def _reason(text: str) -> str:
    """Reject an empty or blank reason, which would otherwise read as no override."""
    import argparse

    if not text.strip():
        raise argparse.ArgumentTypeError(
            "the reason must not be empty: say why the deploy cannot wait, for example "
            "--break-glass \"hotfix for the checkout outage\""
        )
    return text


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    """Report every invalid ``freeze`` entry at its own path.

    The loader turns each path into the line of the entry or its offending key.
    """
    diagnostics = []
    for name, environment in plan.environments.items():
        for problem in freeze_problems(environment.options.get("freeze")):
            path: tuple[str | int, ...] = ("environments", name, "freeze")
            if problem.index is not None:
                path = (*path, problem.index)
            if problem.key is not None:
                path = (*path, problem.key)
            diagnostics.append(Diagnostic(problem.message, None, path))
    return diagnostics


def _active(context: RunContext) -> list[ActiveWindow]:
    """Return the freeze windows of the stage's environment that are active now."""
    environment = context.environment
    if environment is None:
        return []
    windows = parse_windows(environment.options.get("freeze"))
    return active_windows(windows, context.clock.time())


@hookimpl(tryfirst=True)
def shipline_run_deploy(step: Step, context: RunContext) -> StepReport | None:
    """Block the deploy inside a freeze window, unless ``--break-glass`` is given."""
    if context.config.option("break_glass"):
        return None
    active = _active(context)
    if not active:
        return None

    windows = "; ".join(window.describe() for window in active)
    logger.warning("step %s blocked by %s", step.id, windows)
    return StepReport(
        step.id, step.name, step.kind, Outcome.BLOCKED,
        message=f"deploy blocked by {windows}; run with --break-glass REASON to deploy "
        f"anyway",
    )


@hookimpl(wrapper=True, specname="shipline_run_deploy")
def record_break_glass(
    step: Step, context: RunContext
) -> Generator[None, StepReport | None, StepReport | None]:
    """Let a deploy inside a freeze window run with ``--break-glass``, and record it."""
    reason = context.config.option("break_glass")
    active = _active(context) if reason else []
    if active:
        windows = "; ".join(window.describe() for window in active)
        logger.warning("step %s deploys inside %s: --break-glass %r", step.id, windows,
                       reason)
        context.progress(f"break glass: deploying inside {windows}: {reason}")
        context.hook.shipline_break_glass(step=step, windows=active, reason=reason,
                                          context=context)

    report = yield
    if not active or report is None:
        return report

    line = f"break glass: deployed inside {windows}; reason: {reason}"
    report.details = f"{line}\n{report.details}" if report.details else line
    report.data = {
        **report.data,
        "break_glass": {
            "reason": reason,
            "windows": [
                {"name": item.window.label, "start": item.start.isoformat(),
                 "end": item.end.isoformat()}
                for item in active
            ],
        },
    }
    return report
