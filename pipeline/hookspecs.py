"""Hook specifications: every point where a plugin can change what shipline does.

Plugins implement these with :data:`pipeline.hookimpl`. Hooks are grouped by phase:
configure, load and compile, run, report. Each specification states when it is called,
what it receives and what it returns. A ``firstresult`` hook stops at the first
implementation that returns something other than ``None``. All other hooks call every
implementation and collect the results in a list.

Implementations may accept fewer parameters than the specification lists; pluggy
passes only the ones they name. Built-in behaviour is written against these same hooks
(see :mod:`pipeline.builtin`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from pipeline.analysis import MetricProvider
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.diagnostics import Diagnostic
    from pipeline.freeze import ActiveWindow
    from pipeline.notification import Delivery, Notification
    from pipeline.plan import Environment, Plan, Stage, Step
    from pipeline.report import StepReport
    from pipeline.runner import RunResult, StageResult
    from pipeline.schema import StepSchema
    from pipeline.strategy import Strategy
    from pipeline.target import Capability, Router, Target

hookspec = pluggy.HookspecMarker("shipline")


# -- configure ---------------------------------------------------------------------------


@hookspec(historic=True)
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    """Add command-line options to ``shipline run``.

    Called once, before the command line is parsed. Only plugins found through the
    ``shipline`` entry-point group or ``-p`` can add options: the pipeline file, and so
    its ``plugins:`` list and ``shipline_plugins.py``, is read after parsing.

    :param parser: the ``run`` subcommand's parser; add options with ``add_argument``.
        Parsed values are on ``config.options``.
    """


@hookspec(historic=True)
def shipline_configure(config: Config) -> None:
    """Prepare a plugin after the command line is parsed.

    Called once per command, before the pipeline is compiled; plugins registered later
    (from the pipeline file) are called when they are registered. Register further
    plugins (reporters, for example) with ``config.pluginmanager.register``.

    :param config: options, plugin manager, clock and output of this invocation.
    """


@hookspec
def shipline_unconfigure(config: Config) -> None:
    """Release what :func:`shipline_configure` acquired.

    Called once per command, last, even when the command failed.
    """


# -- load and compile --------------------------------------------------------------------


@hookspec
def shipline_step_schemas() -> Sequence[StepSchema]:
    """Declare the step types, targets, routers and analysis providers a plugin adds.

    Called once when the schema is built. Each :class:`~pipeline.schema.StepSchema`
    names a kind (``deploy`` for a strategy, ``scan``, ``gate``, ``notify``, ``target``,
    ``router`` or ``analysis``), a type and the JSON Schema of its options, so that
    pipeline files using it are validated with line-numbered errors. Declaring a type
    also makes the plugin its owner: ``shipline plan`` names the plugin for each step.

    :return: the plugin's fragments; every implementation is called.
    """
    return ()


@hookspec
def shipline_check_plan(plan: Plan, config: Config) -> Sequence[Diagnostic]:
    """Report problems in a compiled plan that a JSON Schema cannot express.

    Called by ``validate``, ``plan`` and ``run`` after compiling, before anything runs;
    for example, a strategy that needs a router in an environment without one.

    :return: diagnostics (with marks where possible); every implementation is called and
        any diagnostic makes the pipeline invalid (exit 2).
    """
    return ()


@hookspec
def shipline_invalid_pipeline(diagnostics: Sequence[Diagnostic], config: Config) -> None:
    """Report the problems that make a pipeline file invalid, before shipline exits 2.

    Called once by ``validate``, ``plan`` and ``run`` when loading, validating or
    compiling the file fails with diagnostics, before the diagnostics are printed. CI
    reporters turn them into annotations here. Nothing has run and nothing was changed.

    :param diagnostics: the problems, sorted by position.
    """


@hookspec(firstresult=True)
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    """Return the longest time in seconds that ``step`` can take, for ``shipline plan``.

    Sum pauses, timeouts, retries and analysis counts. Return ``None`` when the step is
    not yours. The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def shipline_estimate_promotion(step: Step, plan: Plan) -> float | None:
    """Return the shortest time in seconds that deploy ``step`` needs to promote its
    version, for ``shipline plan``.

    Count only waits that nothing can shorten: timed pauses, pauses between batches,
    the minimum span of analyses. Count deploys, checks and approvals as instant.
    Return ``None`` when the step is not yours. The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def shipline_estimate_rollback(step: Step, plan: Plan) -> float | None:
    """Return the longest time in seconds that undoing deploy ``step`` can take, for
    ``shipline plan``: the rollback actions alone, not the step that ran before them.

    Return ``None`` when the step is not yours or the time is unknown. The first
    non-``None`` result wins.
    """


@hookspec
def shipline_capabilities(environment: Environment) -> frozenset[Capability] | None:
    """Return what the target or router of ``environment`` can do, if its type is yours.

    Called at validate time, without creating the target, so that a strategy that needs
    a router or two slots fails validation in an environment that lacks them. Every
    implementation is called and the returned sets are joined.
    """


@hookspec(firstresult=True)
def shipline_strategy_requires(step: Step) -> frozenset[Capability] | None:
    """Return the capabilities the strategy of deploy step ``step`` needs, if it is yours.

    The first non-``None`` result wins.
    """


# -- run ---------------------------------------------------------------------------------


@hookspec
def shipline_run_start(plan: Plan, context: RunContext) -> None:
    """Called once when a run starts, before the first stage."""


@hookspec
def shipline_stage_start(stage: Stage, context: RunContext) -> None:
    """Called when a stage starts running (not for skipped stages)."""


@hookspec
def shipline_step_start(step: Step, context: RunContext) -> None:
    """Called when a step starts running (not for skipped steps), in the runner's thread."""


@hookspec
def shipline_step_progress(message: str, context: RunContext) -> None:
    """Called when a running step reports progress worth a line in a CI log, such as the
    start of a long pause or of a wait for approval (``context.progress``)."""


@hookspec(firstresult=True)
def shipline_make_target(environment: Environment, context: RunContext) -> Target | None:
    """Create the target that runs versions for ``environment``.

    Called at most once per environment and run, when a step first needs the target.
    Return ``None`` unless ``environment.target["type"]`` is yours. The first
    non-``None`` result wins. The runner calls ``close()`` on the target when the run
    ends.
    """


@hookspec(firstresult=True)
def shipline_make_router(environment: Environment, context: RunContext) -> Router | None:
    """Create the traffic router for ``environment`` from ``environment.router``.

    Called at most once per environment and run. Return ``None`` unless
    ``environment.router["type"]`` is yours. The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def shipline_make_provider(
    name: str, options: Mapping[str, Any], context: RunContext
) -> MetricProvider | None:
    """Create the metric provider for one run of an analysis whose ``provider`` is ``name``.

    Called once per analysis run, before its first measurement. When the run ends, the
    provider's ``close()`` is called if it has one. ``options`` is the whole analysis
    mapping (template or inline), already validated against the provider's schema
    fragment, with template arguments (``{{ args.NAME }}``) filled in and a use's policy
    overrides merged. The provider reads its own keys and may ignore the common ones
    (``interval``, ``count``, conditions...), because :mod:`pipeline.analysis` applies
    them. Return ``None`` unless ``name`` is yours. Raise
    :class:`~pipeline.analysis.AnalysisError` for options that cannot work, and the
    analysis ends with the verdict ``error``. The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def shipline_make_strategy(step: Step, context: RunContext) -> Strategy | None:
    """Create the strategy object for a deploy step whose ``step.type`` is yours.

    The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def shipline_run_deploy(step: Step, context: RunContext) -> StepReport | None:
    """Run a deploy step.

    The built-in implementation creates the strategy through
    :func:`shipline_make_strategy` and the target through :func:`shipline_make_target`;
    implement this hook only to replace that whole flow. Register how to undo every
    change with ``context.add_rollback`` as soon as the change is made, so that the
    runner can roll back after a failure or an interrupt. The first non-``None`` result
    wins. An exception is reported as an error of the plugin that raised it.
    """


@hookspec
def shipline_break_glass(
    step: Step, windows: Sequence[ActiveWindow], reason: str, context: RunContext
) -> None:
    """Record that deploy ``step`` runs inside freeze ``windows`` because of
    ``--break-glass REASON``.

    Called once per such step, just before it deploys, after the override was logged.
    The step's report also records it. A history store implements this hook to keep a
    lasting record of each override; every implementation is called.
    """


@hookspec(firstresult=True)
def shipline_run_scan(step: Step, context: RunContext) -> StepReport | None:
    """Run a scan step whose ``step.type`` (its ``uses``) is yours.

    Return a report with outcome ``FAILED`` when findings exceed the threshold; the
    runner turns it into ``BLOCKED`` when nothing has been deployed yet. The first
    non-``None`` result wins.
    """


@hookspec(firstresult=True)
def shipline_run_gate(step: Step, context: RunContext) -> StepReport | None:
    """Run a gate step (health check, analysis, approval, policy) whose type is yours.

    Same contract as :func:`shipline_run_scan`. The first non-``None`` result wins.
    """


@hookspec
def shipline_notify(notification: Notification, context: RunContext) -> Delivery | None:
    """Send ``notification`` if its ``uses`` is yours.

    Called for every ``notify`` step and for every subscription under
    ``notifications:`` whose ``on`` list names the event. Every implementation is
    called; return ``None`` for notifications that are not yours.
    """


@hookspec
def shipline_notification_sent(
    notification: Notification, delivery: Delivery, context: RunContext
) -> None:
    """Called once per notifier after it tried to send ``notification``, failed or not.

    May be called from a notification worker thread, at any time until the run has
    drained its notification queue; implementations must be thread-safe.
    """


@hookspec
def shipline_step_report(report: StepReport, context: RunContext) -> None:
    """Called for every finished step and every rollback, in order, with its report.

    Reporters write output here. The report's text is already masked.
    """


@hookspec
def shipline_stage_finish(stage: Stage, result: StageResult, context: RunContext) -> None:
    """Called when a stage ends, including stages that were skipped."""


@hookspec
def shipline_run_finish(result: RunResult, context: RunContext) -> None:
    """Called once when the run ends, interrupted or not, before the exit code is set.

    Reporters write their files here.
    """
