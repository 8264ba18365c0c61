"""``shipline analyze TEMPLATE --data FILE``: replay an analysis template on recorded data.

The template comes from the pipeline file, its provider is replaced by the recording
(see :mod:`pipeline.replay`), and time is a fake clock, so the replay takes no real time
however long its intervals are. Every measurement is printed with its time since the
start, then the verdict and what the policies made of it. ``--format json`` prints the
same as one JSON object. Exit 0 when the analysis passes (policies included), 1 when it
does not, 2 for invalid input.

A ``pause`` policy looks for its approval file and variable as in a real run. Without
them it waits its whole timeout on the fake clock and then takes its default action.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode
from pipeline.planning import load_plan, resolve_pipeline_path

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pipeline.analysis import AnalysisOutcome, AnalysisSettings
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.replay import Recording, ReplayProvider


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "analyze", parents=parents, help="replay an analysis template on recorded data",
        description="Run an analysis template from the pipeline file against a recorded "
        "time series (CSV or JSON) with a fake clock, printing each measurement and the "
        "verdict. Exit 0 when the analysis passes, 1 when it does not, 2 for invalid input.",
    )
    parser.add_argument("template", help="name of the template under 'analyses:'")
    parser.add_argument("file", nargs="?", help="pipeline file (default: shipline.yml)")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="recorded values: a .csv file with a header row, or a .json "
                        "list of objects; a 'time' column or key is optional")
    parser.add_argument("--arg", dest="args", action="append", default=[],
                        metavar="NAME=VALUE", help="value of a template argument; repeat "
                        "for several")
    parser.add_argument("--canary-version", default="canary",
                        help="version that args.canary_version reads (default: canary)")
    parser.add_argument("--stable-version", default="stable",
                        help="version that args.stable_version reads (default: stable)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text); json prints one object with "
                        "every run and measurement")
    return parser


class _ReplayPlugin:
    """Supplies the replay provider in place of every other provider."""

    def __init__(self, provider: ReplayProvider) -> None:
        self.provider = provider

    @hookimpl(tryfirst=True)
    def shipline_make_provider(
        self, name: str, options: Mapping[str, Any], context: RunContext
    ) -> ReplayProvider:
        return self.provider


def main(config: Config) -> ExitCode:
    from pipeline.analysis import run_analysis_use
    from pipeline.clock import FakeClock
    from pipeline.context import RunContext
    from pipeline.replay import ReplayProvider, load_recording

    options = config.options
    path = resolve_pipeline_path(options.file, config.invocation_dir)
    plan = load_plan(path, config).plan
    ref = {"template": options.template, "args": _parse_args(options.args)}
    settings = _check_use(ref, plan.analyses, options)
    recording = load_recording(config.invocation_dir / options.data)
    _check_recorded_names(settings, recording)

    clock = FakeClock()
    config = dataclasses.replace(config, clock=clock)
    provider = ReplayProvider(recording, clock, clock.time())
    config.registry.register(_ReplayPlugin(provider), name="replay", origin="shipline analyze")
    context = RunContext(plan, config)

    outcome = run_analysis_use(ref, context, stable_version=options.stable_version,
                               canary_version=options.canary_version, endpoint=None)
    if options.format == "json":
        _print_json(outcome, recording, provider.start, config)
    else:
        _print(outcome, recording, provider.start, config)
    return ExitCode.OK if outcome.passed else ExitCode.FAILED


def _check_use(ref: Mapping[str, Any], analyses: Mapping[str, Any],
               options: argparse.Namespace) -> AnalysisSettings:
    """Parse the template's settings; raise UsageError when the template does not exist
    or its arguments do not fit."""
    from pipeline.analysis import AnalysisError, prepare_analysis

    builtins = {"canary_version": options.canary_version,
                "stable_version": options.stable_version, "environment": ""}
    try:
        settings, _ = prepare_analysis(ref, analyses, builtins)
    except AnalysisError as exc:
        hint = " (with shipline analyze: --arg NAME=VALUE)" if exc.key == "args" else ""
        raise UsageError(f"{exc}{hint}") from None
    return settings


def _check_recorded_names(settings: AnalysisSettings, recording: Recording) -> None:
    """Raise UsageError when a condition reads a value that the recording lacks.

    Without a ``result`` value, ``result`` is the map of all recorded values, so a
    condition may still read ``result.NAME`` for a recorded NAME. NOTE: a condition
    that passes that map whole to a function (``size(result)``) is rejected too.
    """
    recorded = {name for row in recording.rows for name in row}
    for condition in settings.conditions:
        needed = set(condition.names) - {"args"}
        if "result" not in recorded and "result" in needed:
            needed.discard("result")
            needed |= condition.result_fields or {"result"}
        missing = sorted(needed - recorded)
        if missing:
            raise UsageError(
                f"{recording.path}: the recording has no value {missing[0]!r}, which "
                f"condition {condition.text!r} reads: add a CSV column or JSON key "
                f"{missing[0]!r}; recorded values: {', '.join(sorted(recorded))}"
            )


def _parse_args(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise UsageError(f"--arg {pair!r}: expected NAME=VALUE")
        values[name] = value
    return values


def _print_json(outcome: AnalysisOutcome, recording: Recording, start: float,
                config: Config) -> None:
    """Print the outcome as JSON; each measurement's ``offset`` is seconds from the start."""
    import json

    runs = []
    for run in outcome.runs:
        data = run.to_data()
        for measurement in data["measurements"]:
            measurement["offset"] = measurement["time"] - start
        runs.append(data)
    document = {"analysis": outcome.name, "data": str(recording.path),
                "passed": outcome.passed, "message": outcome.message, "runs": runs}
    print(json.dumps(document, indent=2), file=config.stdout)


def _print(outcome: AnalysisOutcome, recording: Recording, start: float,
           config: Config) -> None:
    from pipeline.durations import format_duration

    out = config.stdout
    rows = len(recording.rows)
    source = f"{recording.path} ({rows} {'row' if rows == 1 else 'rows'})"
    print(f"analysis '{outcome.name}' replayed on {source}", file=out)
    for run_number, run in enumerate(outcome.runs, start=1):
        if len(outcome.runs) > 1:
            print(f"run {run_number}:", file=out)
        for number, measurement in enumerate(run.measurements, start=1):
            offset = format_duration(max(measurement.time - start, 0.0))
            print(f"  {number}. +{offset} {measurement.verdict}: {measurement.message}",
                  file=out)
        print(f"  verdict: {run.verdict}: {run.message}", file=out)
        if run.action_message:
            print(f"  policy: {run.action_message}", file=out)
    result = "passed" if outcome.passed else "did not pass"
    print(f"analysis '{outcome.name}' {result}", file=out)
