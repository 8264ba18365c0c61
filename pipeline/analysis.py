"""Analyses: repeated measurements from a metric provider, each judged by conditions.

An analysis is a mapping with a ``provider`` (the plugin that measures) and options. It
is either a template under the pipeline's top-level ``analyses:`` and referred to by
name (with arguments: ``{template: NAME, args: {...}}``), or written inline where it is
used: a canary ``analysis`` step, a blue-green promotion analysis, a rolling deploy's
``analysis``, or an ``analysis`` gate. A provider is a
:class:`MetricProvider` created through the ``shipline_make_provider`` hook; its JSON
Schema fragment (kind ``analysis``) includes :data:`COMMON_ANALYSIS_PROPERTIES`.

Options common to every provider. Their meaning and defaults follow the metric fields
of Argo Rollouts (``interval``, ``count``, ``initialDelay``, ``failureLimit``,
``inconclusiveLimit``, ``consecutiveErrorLimit``, ``successCondition``,
``failureCondition``), in snake case. The rules below were checked against its
``analysis/analysis.go`` and ``utils/evaluate/evaluate.go``.

``interval`` (duration, default 60 s)
    Time from the end of one measurement to the start of the next. After a measurement
    with an error, the retry waits ``interval`` when the analysis sets it and 10 s
    otherwise, as Argo Rollouts does.
``count`` (integer, default 1)
    Number of measurements to take. Measurements with an error do not count. Argo
    Rollouts runs without end when only ``interval`` is set; shipline takes 1, because
    a CI job must end.
``initial_delay`` (duration, default 0)
    Time to wait before the first measurement.
``failure_limit`` (integer, default 0)
    The analysis fails as soon as more measurements than this have failed.
``inconclusive_limit`` (integer, default 0)
    The analysis is inconclusive as soon as more measurements than this are
    inconclusive.
``consecutive_error_limit`` (integer, default 4)
    The analysis ends with an error as soon as more measurements than this in a row
    have had errors. Any measurement without an error resets the run.
``success`` and ``failure`` (condition, or list of conditions)
    CEL expressions over the measured values; see :mod:`pipeline.conditions`. A list
    of success conditions holds when every one of them holds; a list of failure
    conditions holds when any one of them holds. At least one of ``success`` and
    ``failure`` is required.
``timeout`` (duration, default 60 s)
    The maximum time one measurement may take. A measurement still running then is
    cancelled and counts as an error. Argo Rollouts has no such field: this bound is
    shipline's, so that no measurement can hang a run.
``args``, ``on_failure``, ``on_inconclusive``, ``on_no_data``
    Template arguments (:mod:`pipeline.analysisargs`) and policies
    (:mod:`pipeline.analysispolicy`).

A measurement's verdict follows Argo Rollouts, with "no data" for missing data:

1. the provider raised, returned something that is not metric values, or a condition
   failed on them: ``error``;
2. a failure condition is true: ``failed``;
3. a condition is unknown because a value it reads has no data: ``on_no_data``
   decides, by default ``inconclusive``;
4. with success conditions only: ``successful`` when they hold, else ``failed``;
5. with failure conditions only: ``successful`` (none of them holds);
6. with both: ``successful`` when the success conditions hold, else ``inconclusive``.

The analysis is judged after every measurement, in this order, and stops at the
first rule that applies: more failed measurements than ``failure_limit``: ``failed``;
more inconclusive ones than ``inconclusive_limit``: ``inconclusive``; more errors in a
row than ``consecutive_error_limit``: ``error``; ``count`` measurements taken:
``successful``. A configuration problem that no retry can fix (an unknown template or
provider, invalid options, a missing argument, a condition naming an unknown metric,
a provider raising :class:`AnalysisError`) ends the analysis at once with ``error``.
:func:`run_analysis_use` then applies ``on_failure`` or ``on_inconclusive`` to the
verdict; an ``error`` always aborts.

The code is split by concept, and this module re-exports the public names of each part:
:mod:`pipeline.analysismodel` (verdicts, defaults, measurements, results, the provider
interface), :mod:`pipeline.analysisschema` (JSON Schema of the options),
:mod:`pipeline.analysissettings` (parsing the options, resolving template names),
:mod:`pipeline.analysisjudge` (judging one measurement),
:mod:`pipeline.analysisrun` (the measurement loop) and :mod:`pipeline.analysischecks`
(validate-time checks), :mod:`pipeline.analysisargs` (template arguments),
:mod:`pipeline.analysispolicy` (policies) and :mod:`pipeline.analysisstep` (running an
analysis for a step, with its policies). The built-in plugin ``analysis`` is this
module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl

if TYPE_CHECKING:
    from pipeline.analysisargs import BUILTIN_ARGS, bind_args
    from pipeline.analysischecks import check_analyses, resolve_use
    from pipeline.analysisjudge import Judgement, judge, show_value
    from pipeline.analysismodel import (
        DEFAULT_CONSECUTIVE_ERROR_LIMIT,
        DEFAULT_COUNT,
        DEFAULT_FAILURE_LIMIT,
        DEFAULT_INCONCLUSIVE_LIMIT,
        DEFAULT_INITIAL_DELAY,
        DEFAULT_INTERVAL,
        DEFAULT_TIMEOUT,
        ERROR,
        ERROR_RETRY_INTERVAL,
        FAILED,
        INCONCLUSIVE,
        SUCCESSFUL,
        AnalysisError,
        AnalysisResult,
        Measurement,
        MeasurementRequest,
        MetricProvider,
        ProviderError,
    )
    from pipeline.analysispolicy import Policies, Policy
    from pipeline.analysisrun import run_analysis
    from pipeline.analysisschema import ANALYSIS_REF_SCHEMA, COMMON_ANALYSIS_PROPERTIES
    from pipeline.analysissettings import (
        AnalysisSettings,
        analysis_label,
        estimate_analysis,
        estimate_analysis_or_zero,
        prepare_analysis,
        resolve_analysis,
    )
    from pipeline.analysisstep import AnalysisOutcome, record_outcome, run_analysis_use
    from pipeline.analysisuses import AnalysisUse, iter_analysis_uses
    from pipeline.config import Config
    from pipeline.diagnostics import Diagnostic
    from pipeline.plan import Plan

#: The module of each name this module exports, imported when the name is first read, so
#: that loading the built-in plugins at every start does not import the analysis code.
_MODULES = {
    "ANALYSIS_REF_SCHEMA": "pipeline.analysisschema",
    "AnalysisError": "pipeline.analysismodel",
    "AnalysisOutcome": "pipeline.analysisstep",
    "AnalysisResult": "pipeline.analysismodel",
    "AnalysisSettings": "pipeline.analysissettings",
    "AnalysisUse": "pipeline.analysisuses",
    "BUILTIN_ARGS": "pipeline.analysisargs",
    "COMMON_ANALYSIS_PROPERTIES": "pipeline.analysisschema",
    "DEFAULT_CONSECUTIVE_ERROR_LIMIT": "pipeline.analysismodel",
    "DEFAULT_COUNT": "pipeline.analysismodel",
    "DEFAULT_FAILURE_LIMIT": "pipeline.analysismodel",
    "DEFAULT_INCONCLUSIVE_LIMIT": "pipeline.analysismodel",
    "DEFAULT_INITIAL_DELAY": "pipeline.analysismodel",
    "DEFAULT_INTERVAL": "pipeline.analysismodel",
    "DEFAULT_TIMEOUT": "pipeline.analysismodel",
    "ERROR": "pipeline.analysismodel",
    "ERROR_RETRY_INTERVAL": "pipeline.analysismodel",
    "FAILED": "pipeline.analysismodel",
    "INCONCLUSIVE": "pipeline.analysismodel",
    "Judgement": "pipeline.analysisjudge",
    "Measurement": "pipeline.analysismodel",
    "MeasurementRequest": "pipeline.analysismodel",
    "MetricProvider": "pipeline.analysismodel",
    "ProviderError": "pipeline.analysismodel",
    "Policies": "pipeline.analysispolicy",
    "Policy": "pipeline.analysispolicy",
    "SUCCESSFUL": "pipeline.analysismodel",
    "analysis_label": "pipeline.analysissettings",
    "bind_args": "pipeline.analysisargs",
    "check_analyses": "pipeline.analysischecks",
    "estimate_analysis": "pipeline.analysissettings",
    "estimate_analysis_or_zero": "pipeline.analysissettings",
    "iter_analysis_uses": "pipeline.analysisuses",
    "judge": "pipeline.analysisjudge",
    "prepare_analysis": "pipeline.analysissettings",
    "record_outcome": "pipeline.analysisstep",
    "resolve_analysis": "pipeline.analysissettings",
    "resolve_use": "pipeline.analysischecks",
    "run_analysis": "pipeline.analysisrun",
    "run_analysis_use": "pipeline.analysisstep",
    "show_value": "pipeline.analysisjudge",
}

__all__ = [
    "ANALYSIS_REF_SCHEMA",
    "BUILTIN_ARGS",
    "COMMON_ANALYSIS_PROPERTIES",
    "DEFAULT_CONSECUTIVE_ERROR_LIMIT",
    "DEFAULT_COUNT",
    "DEFAULT_FAILURE_LIMIT",
    "DEFAULT_INCONCLUSIVE_LIMIT",
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "ERROR",
    "ERROR_RETRY_INTERVAL",
    "FAILED",
    "INCONCLUSIVE",
    "SUCCESSFUL",
    "AnalysisError",
    "AnalysisOutcome",
    "AnalysisResult",
    "AnalysisSettings",
    "AnalysisUse",
    "Judgement",
    "Measurement",
    "MeasurementRequest",
    "MetricProvider",
    "Policies",
    "Policy",
    "ProviderError",
    "analysis_label",
    "bind_args",
    "check_analyses",
    "estimate_analysis",
    "estimate_analysis_or_zero",
    "iter_analysis_uses",
    "judge",
    "prepare_analysis",
    "record_outcome",
    "resolve_analysis",
    "resolve_use",
    "run_analysis",
    "run_analysis_use",
    "shipline_check_plan",
    "show_value",
]


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    """Report the analysis problems that the schema cannot find; see :func:`check_analyses`."""
    from pipeline.analysisuses import uses_analyses

    if not uses_analyses(plan):
        return []
    from pipeline.analysischecks import check_analyses

    return check_analyses(plan, config)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
