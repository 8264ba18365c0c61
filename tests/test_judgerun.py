"""Running ``judge: compare`` analyses: series from recorded data and from a real command,
through ``run_analysis``, and in a canary pipeline with a JUnit report."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from pipeline import hookimpl
from pipeline.analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    AnalysisOutcome,
    estimate_analysis,
    run_analysis,
    run_analysis_use,
)
from pipeline.builtin import series
from pipeline.clock import FakeClock
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.judgerun import SeriesRequest, format_query
from pipeline.plan import Plan, freeze
from pipeline.plugins import PluginRegistry
from pipeline.testing import run_pipeline

START = 1_800_000_000.0

BASELINE = [100 + ((i * 7) % 30) / 3 - 5 for i in range(30)]
SLOWER = [value * 1.3 for value in BASELINE]


def make_context(analyses: Mapping[str, Any], directory: Path, *plugins: object) -> RunContext:
    registry = PluginRegistry()
    registry.register(series, name="series", origin="test")
    for index, plugin in enumerate(plugins):
        registry.register(plugin, name=f"plugin-{index}", origin="test")
    config = Config(options=argparse.Namespace(), registry=registry, clock=FakeClock(START))
    plan = Plan(name="test", file=directory / "shipline.yml", stages=(), environments={},
                analyses=freeze(analyses), notifications=(), state={})
    return RunContext(plan, config)


def judge_options(data: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    return {
        "provider": "recorded",
        "judge": "compare",
        "window": "5m",
        "data": data,
        "metrics": [
            {"name": "latency", "query": "latency:{group}:{version}", "direction": "increase"},
            {"name": "errors", "query": "errors:{group}", "direction": "increase",
             "critical": True},
        ],
        **options,
    }


def judge(options: Mapping[str, Any], tmp_path: Path,
          *plugins: object, stable: str | None = "1.0") -> tuple[Any, RunContext]:
    context = make_context({"compare": options}, tmp_path, *plugins)
    result = run_analysis("compare", context, stable_version=stable, canary_version="2.0",
                          endpoint=None)
    return result, context


def test_format_query_replaces_only_tokens() -> None:
    query = 'rate(http_errors{version="{version}", job="{group}"}[1m])'

    assert format_query(query, "canary", "2.0") == (
        'rate(http_errors{version="2.0", job="canary"}[1m])'
    )


def test_run_comparison_successful(tmp_path: Path) -> None:
    data = {"latency:baseline:1.0": BASELINE, "latency:canary:2.0": list(reversed(BASELINE)),
            "errors:baseline": [0.0] * 20, "errors:canary": [0.0] * 20}

    result, context = judge(judge_options(data), tmp_path)

    assert result.verdict == SUCCESSFUL
    assert result.message == "score 100.0 (2 of 2 scored metrics passed), at or above pass 95"
    assert context.config.clock.sleeps == [300.0]  # type: ignore[attr-defined]
    assert [m.time for m in result.measurements] == [START + 300] * 2
    assert result.details() == (
        "1. 2027-01-15T08:05:00Z successful: latency: Pass (U=450, p=1, baseline n=30, "
        "canary n=30, mean 99.8333 -> 99.8333, +0.0%)\n"
        "2. 2027-01-15T08:05:00Z successful: errors: Pass (U=200, p=1, baseline n=20, "
        "canary n=20, mean 0 -> 0)"
    )


def test_run_comparison_reports_numbers_in_data(tmp_path: Path) -> None:
    data = {"latency:baseline:1.0": BASELINE, "latency:canary:2.0": SLOWER,
            "errors:baseline": [0.0] * 20, "errors:canary": [0.0] * 20}

    result, _ = judge(judge_options(data), tmp_path)

    latency = result.to_data()["measurements"][0]
    assert latency["verdict"] == FAILED
    assert set(latency["values"]) == {
        "statistic", "p_value", "baseline_points", "canary_points", "baseline_median",
        "canary_median", "baseline_mean", "canary_mean", "effect",
    }
    assert latency["values"]["baseline_points"] == 30
    assert latency["values"]["statistic"] == 900
    assert result.verdict == FAILED
    assert result.message == "score 50.0 (1 of 2 scored metrics passed), below marginal 75"


def test_run_comparison_critical_metric_fails(tmp_path: Path) -> None:
    data = {"latency:baseline:1.0": BASELINE, "latency:canary:2.0": BASELINE,
            "errors:baseline": [0.0] * 20, "errors:canary": [0.0] * 10 + [2.0] * 10}
    options = judge_options(data)
    options["metrics"][0]["weight"] = 50

    result, _ = judge(options, tmp_path)

    assert result.verdict == FAILED
    assert result.message == (
        "critical metric 'errors' failed; score 98.0 (1 of 2 scored metrics passed)"
    )


def test_run_comparison_marginal_is_inconclusive(tmp_path: Path) -> None:
    data = {"latency:baseline:1.0": BASELINE, "latency:canary:2.0": SLOWER,
            "errors:baseline": [0.0] * 20, "errors:canary": [0.0] * 20}
    options = judge_options(data, score={"pass": 90, "marginal": 40})

    result, _ = judge(options, tmp_path)

    assert result.verdict == INCONCLUSIVE
    assert result.message == "score 50.0 (1 of 2 scored metrics passed), marginal: below pass 90"


def test_run_comparison_sparse_pairs_in_window(tmp_path: Path) -> None:
    """Timed points outside the window are left out, and null points are dropped."""
    end = START + 300
    canary = [[end - 10 * i, None if i % 4 == 0 else value] for i, value in enumerate(BASELINE)]
    canary.append([end - 3600, 5000.0])
    data = {"latency:baseline:1.0": BASELINE, "latency:canary:2.0": canary,
            "errors:baseline": [0.0] * 20, "errors:canary": [0.0] * 20}

    result, _ = judge(judge_options(data), tmp_path)

    assert result.verdict == SUCCESSFUL
    assert "baseline n=30, canary n=22," in result.measurements[0].message


def test_run_comparison_from_file(tmp_path: Path) -> None:
    data = {"latency:baseline:1.0": BASELINE, "latency:canary:2.0": SLOWER,
            "errors:baseline": [0.0] * 20, "errors:canary": [0.0] * 20}
    (tmp_path / "series.json").write_text(json.dumps(data), encoding="utf-8")
    options = judge_options({}, file="series.json")
    del options["data"]

    result, _ = judge(options, tmp_path)

    assert result.measurements[0].message.startswith("latency: High (U=900, p=")


def test_run_comparison_missing_query_is_error(tmp_path: Path) -> None:
    result, _ = judge(judge_options({"latency:baseline:1.0": BASELINE}), tmp_path)

    assert result.verdict == ERROR
    assert result.message == (
        "recorded series have no query 'latency:canary:2.0' (metric 'latency', canary); "
        "recorded queries: 'latency:baseline:1.0'"
    )


def test_run_comparison_unreadable_file_is_error(tmp_path: Path) -> None:
    (tmp_path / "series.json").write_text("{not json", encoding="utf-8")
    options = judge_options({}, file="series.json")
    del options["data"]

    result, _ = judge(options, tmp_path)

    assert result.verdict == ERROR
    assert result.message == (
        f"series file {tmp_path / 'series.json'} is not valid JSON: Expecting property "
        f"name enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_run_comparison_first_deploy_is_error(tmp_path: Path) -> None:
    result, _ = judge(judge_options({}), tmp_path, stable=None)

    assert result.verdict == ERROR
    assert result.message == (
        "analysis 'compare' compares with a baseline, but nothing was deployed before this "
        "version: use a condition-based analysis for a first deploy"
    )


class MeasureOnly:
    """A provider plugin whose provider cannot return series."""

    class Provider:
        def measure(self, request: object, cancel: threading.Event) -> dict[str, float]:
            return {}

    @hookimpl
    def shipline_make_provider(self, name: str) -> object | None:
        return self.Provider() if name == "gauge" else None


def test_run_comparison_provider_without_series_is_error(tmp_path: Path) -> None:
    options = {**judge_options({}), "provider": "gauge"}

    result, _ = judge(options, tmp_path, MeasureOnly())

    assert result.verdict == ERROR
    assert result.message == (
        "analysis 'compare': provider 'gauge' cannot return series, which 'judge: compare' "
        "needs; use a provider with series support such as 'command' or 'recorded'"
    )


def test_estimate_comparison_window_and_fetches() -> None:
    context = make_context({"compare": judge_options({}, timeout="10s")}, Path("."))

    assert estimate_analysis("compare", context.plan) == 300 + 4 * 10


# -- series from a command ---------------------------------------------------------------

SCRIPT = """\
import json, sys
query, group, version, start, end = sys.argv[1:]
if query == "fail":
    sys.stderr.write("no such metric\\n")
    sys.exit(3)
if query == "lines":
    print("1.5\\nNaN\\n\\n2.5")
    sys.exit(0)
base = [100 + ((i * 7) % 30) / 3 - 5 for i in range(30)]
factor = 1.3 if group == "canary" else 1.0
print(json.dumps([v * factor for v in base]))
sys.stderr.write(f"{group} {version} {float(end) - float(start)}\\n")
"""


def command_options(tmp_path: Path, query: str) -> dict[str, Any]:
    script = tmp_path / "series.py"
    script.write_text(SCRIPT, encoding="utf-8")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} " \
              "{query} {group} {version} {start} {end}"
    return {"provider": "command", "judge": "compare", "command": command, "window": 60,
            "metrics": [{"name": "latency", "query": query, "direction": "increase"}]}


def test_command_series_judged(tmp_path: Path) -> None:
    result, _ = judge(command_options(tmp_path, "latency"), tmp_path)

    assert result.verdict == FAILED
    assert result.measurements[0].message.startswith("latency: High (U=900, p=")


def test_command_series_arguments_and_lines(tmp_path: Path) -> None:
    provider = series.CommandSeries(command_options(tmp_path, "lines")["command"])
    request = SeriesRequest("a", "m", "lines", "canary", "2.0", 100.0, 160.0, 10.0)

    assert provider.fetch_series(request, threading.Event()) == [1.5, None, None, 2.5]


def test_command_series_failure_names_program(tmp_path: Path) -> None:
    result, _ = judge(command_options(tmp_path, "fail"), tmp_path)

    assert result.verdict == ERROR
    assert result.message == (
        f"fetching metric 'latency' of the baseline (1.0) failed: series "
        f"command {sys.executable!r} exited with status 3: no such metric"
    )


def test_command_series_bad_output(tmp_path: Path) -> None:
    request = SeriesRequest("a", "m", "q", "canary", "2.0", 0.0, 1.0, 1.0)

    with pytest.raises(series.AnalysisError) as caught:
        series.parse_output("12\nabc\n", request, "series command 'x'")

    assert str(caught.value) == (
        "series command 'x' printed 'abc' on line 2: expected a number per line or a "
        "JSON list"
    )


def test_command_series_needs_command() -> None:
    with pytest.raises(series.AnalysisError) as caught:
        series.CommandSeries(None)

    assert str(caught.value) == (
        "a 'judge: compare' analysis with provider 'command' needs 'command', a command "
        "line or a list of arguments that prints the series"
    )


def test_command_series_argument_list(tmp_path: Path) -> None:
    options = command_options(tmp_path, "lines")
    provider = series.CommandSeries(shlex.split(options["command"]))
    request = SeriesRequest("a", "m", "lines", "canary", "2.0", 100.0, 160.0, 10.0)

    assert provider.fetch_series(request, threading.Event()) == [1.5, None, None, 2.5]


# -- in a pipeline -----------------------------------------------------------------------

PIPELINE = """\
version: 1
name: shop
environments:
  production:
    target: {type: fake, slots: {blue: [b1, b2], green: [g1, g2]}, version: "1.0"}
analyses:
  compare:
    provider: recorded
    judge: compare
    window: 5m
    file: series.json
    metrics:
      - {name: latency, query: "latency:{group}", direction: increase}
stages:
  - name: production
    environment: production
    steps:
      - deploy:
          version: "2.0"
          strategy: canary
          steps: [{set_weight: 20}, {analysis: compare}, {set_weight: 100}]
"""


def junit_cases(tmp_path: Path, canary: list[float]) -> tuple[int, list[Any]]:
    data = {"latency:baseline": BASELINE, "latency:canary": canary}
    (tmp_path / "series.json").write_text(json.dumps(data), encoding="utf-8")

    run = run_pipeline(PIPELINE, directory=tmp_path, args=["--junitxml", str(tmp_path / "r.xml")])

    assert run.errors == ""
    report = JUnitXml.fromfile(str(tmp_path / "r.xml"))
    return run.exit_code, [case for suite in report for case in suite]


def test_pipeline_judgment_in_step_report(tmp_path: Path) -> None:
    data = {"latency:baseline": BASELINE, "latency:canary": list(reversed(BASELINE))}
    (tmp_path / "series.json").write_text(json.dumps(data), encoding="utf-8")

    run = run_pipeline(PIPELINE, directory=tmp_path)

    assert run.exit_code == 0
    assert run.report("production/1").details.endswith(
        "analysis 'compare': successful: score 100.0 (1 of 1 scored metrics passed), at or "
        "above pass 95\n"
        "1. 2027-01-15T08:05:00Z successful: latency: Pass (U=450, p=1, baseline n=30, "
        "canary n=30, mean 99.8333 -> 99.8333, +0.0%)"
    )


def test_pipeline_judgment_failure_in_junit(tmp_path: Path) -> None:
    exit_code, cases = junit_cases(tmp_path, SLOWER)

    assert exit_code == 1
    failure = cases[0].result[0]
    assert failure.message == (
        "analysis 'compare' failed: score 0.0 (0 of 1 scored metrics passed), below "
        "marginal 75"
    )
    assert (
        "1. 2027-01-15T08:05:00Z failed: latency: High (U=900, p=3.02e-11, baseline n=30, "
        "canary n=30, mean 99.8333 -> 129.783, +30.0%), fails"
    ) in failure.text


def test_pipeline_judgment_validated(tmp_path: Path) -> None:
    bad = PIPELINE.replace("window: 5m", "window: 5m\n    score: {pass: 50, marginal: 60}")

    run = run_pipeline(bad, directory=tmp_path)

    assert run.exit_code == 2
    assert run.errors == (
        f"{tmp_path / 'shipline.yml'}:11:12: analyses.compare.score: invalid "
        f"'score': 'marginal' (60) is above 'pass' (50); set marginal at or below pass"
    )


def test_pipeline_judgment_in_events(tmp_path: Path) -> None:
    """``--events`` lists each metric as a measurement with its test numbers, in lines
    that follow the events schema."""
    from jsonschema import Draft202012Validator

    schema_file = Path(__file__).resolve().parents[1] / "schemas" / "events.schema.json"
    validator = Draft202012Validator(json.loads(schema_file.read_text(encoding="utf-8")))
    data = {"latency:baseline": BASELINE, "latency:canary": SLOWER}
    (tmp_path / "series.json").write_text(json.dumps(data), encoding="utf-8")

    run_pipeline(PIPELINE, directory=tmp_path, args=["--events", str(tmp_path / "ev.jsonl")])

    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    measurements = [event for event in events if event["event"] == "measurement"]
    assert len(measurements) == 1
    assert measurements[0]["values"]["statistic"] == 900
    assert measurements[0]["values"]["baseline_points"] == 30
    assert measurements[0]["values"]["p_value"] < 1e-9
    assert measurements[0]["verdict"] == FAILED
    for event in events:
        assert list(validator.iter_errors(event)) == []


# -- policies ----------------------------------------------------------------------------

SAME = {"latency:baseline:1.0": BASELINE, "latency:canary:2.0": list(reversed(BASELINE)),
        "errors:baseline": [0.0] * 20, "errors:canary": [0.0] * 20}
WORSE = {**SAME, "latency:canary:2.0": SLOWER}
NO_POINTS = {"latency:baseline:1.0": [1.0, 2.0], "latency:canary:2.0": [1.0, 2.0],
             "errors:baseline": [], "errors:canary": []}
#: Half the score fails, which is marginal with pass 90 and marginal 40.
MARGINAL = {"score": {"pass": 90, "marginal": 40}}
NOT_CRITICAL = [
    {"name": "latency", "query": "latency:{group}:{version}", "direction": "increase"},
    {"name": "errors", "query": "errors:{group}", "direction": "increase"},
]


def judge_use(data: Mapping[str, Any], tmp_path: Path, **options: Any) -> AnalysisOutcome:
    context = make_context({"compare": judge_options(data, **options)}, tmp_path)
    return run_analysis_use("compare", context, stable_version="1.0", canary_version="2.0",
                            endpoint=None)


def test_judge_policy_pass_continues(tmp_path: Path) -> None:
    outcome = judge_use(SAME, tmp_path, on_failure="abort", on_inconclusive="abort")

    assert outcome.passed
    assert outcome.runs[0].action == "continue"


def test_judge_policy_failure_aborts_by_default(tmp_path: Path) -> None:
    outcome = judge_use(WORSE, tmp_path, metrics=NOT_CRITICAL)

    assert not outcome.passed
    assert outcome.runs[0].action == "abort"
    assert outcome.runs[0].action_message == "on_failure is abort"


def test_judge_policy_on_failure_pass(tmp_path: Path) -> None:
    outcome = judge_use(WORSE, tmp_path, metrics=NOT_CRITICAL, on_failure="pass")

    assert outcome.passed
    assert outcome.runs[0].verdict == FAILED
    assert outcome.message.endswith("; on_failure is pass: going on")


def test_judge_policy_on_failure_retry(tmp_path: Path) -> None:
    outcome = judge_use(WORSE, tmp_path, metrics=NOT_CRITICAL, on_failure={"retry": 1})

    assert not outcome.passed
    assert len(outcome.runs) == 2
    assert outcome.message.endswith("; on_failure is retry: 1: still failed after the retries")


def test_judge_policy_marginal_pauses_by_default(tmp_path: Path) -> None:
    outcome = judge_use(WORSE, tmp_path, metrics=NOT_CRITICAL, **MARGINAL)

    assert not outcome.passed
    assert outcome.runs[0].verdict == INCONCLUSIVE
    assert outcome.runs[0].action == "abort"
    assert outcome.message.endswith(
        "; on_inconclusive is pause: not approved within 1h: create "
        ".shipline/approve-compare to approve; default action abort"
    )


def test_judge_policy_marginal_pause_approved(tmp_path: Path) -> None:
    (tmp_path / ".shipline").mkdir()
    (tmp_path / ".shipline" / "approve-compare").touch()

    outcome = judge_use(WORSE, tmp_path, metrics=NOT_CRITICAL, **MARGINAL)

    assert outcome.passed
    assert outcome.message.endswith(
        "; on_inconclusive is pause: approved: .shipline/approve-compare exists"
    )


def test_judge_policy_marginal_pause_default_pass(tmp_path: Path) -> None:
    pause = {"pause": {"env": "SHIPLINE_TEST_UNSET_FLAG", "timeout": "2s", "default": "pass"}}

    outcome = judge_use(WORSE, tmp_path, metrics=NOT_CRITICAL, on_inconclusive=pause,
                        **MARGINAL)

    assert outcome.passed
    assert outcome.runs[0].action == "pass"


def test_judge_policy_no_data_goes_to_inconclusive(tmp_path: Path) -> None:
    outcome = judge_use(NO_POINTS, tmp_path, on_inconclusive="pass")

    assert outcome.passed
    assert outcome.runs[0].verdict == INCONCLUSIVE
    assert outcome.message.endswith("; on_inconclusive is pass: going on")


def test_judge_policy_on_no_data_abort(tmp_path: Path) -> None:
    outcome = judge_use(NO_POINTS, tmp_path, on_inconclusive="pass", on_no_data="abort")

    assert not outcome.passed
    assert outcome.runs[0].action_message == "on_no_data aborted the analysis"


def test_judge_policy_on_no_data_pass(tmp_path: Path) -> None:
    outcome = judge_use(NO_POINTS, tmp_path, on_no_data="pass")

    assert outcome.passed
    assert outcome.message.endswith("; on_no_data is pass: going on")


def test_judge_policy_on_no_data_retry(tmp_path: Path) -> None:
    outcome = judge_use(NO_POINTS, tmp_path, on_no_data={"retry": 2})

    assert not outcome.passed
    assert len(outcome.runs) == 3
    assert outcome.runs[0].action_message == "on_no_data is retry: 2: running again (1 of 2)"
    assert outcome.message.endswith(
        "; on_no_data is retry: 2: still inconclusive after the retries"
    )


def test_judge_policy_use_overrides_template(tmp_path: Path) -> None:
    context = make_context({"compare": judge_options(WORSE, metrics=NOT_CRITICAL)}, tmp_path)

    outcome = run_analysis_use({"template": "compare", "on_failure": "pass"}, context,
                               stable_version="1.0", canary_version="2.0", endpoint=None)

    assert outcome.passed


def test_pipeline_judgment_policy_validated(tmp_path: Path) -> None:
    bad = PIPELINE.replace("window: 5m", "window: 5m\n    on_failure: stop")

    run = run_pipeline(bad, directory=tmp_path)

    assert run.exit_code == 2
    assert "analyses.compare.on_failure" in run.errors


def test_pipeline_judgment_pause_timeout_only(tmp_path: Path) -> None:
    """A pause that sets only its timeout waits for the plain pause's file."""
    data = {"latency:baseline": BASELINE, "latency:canary": SLOWER}
    (tmp_path / "series.json").write_text(json.dumps(data), encoding="utf-8")
    policy = "window: 5m\n    on_failure: {pause: {timeout: 2s, default: pass}}"

    run = run_pipeline(PIPELINE.replace("window: 5m", policy), directory=tmp_path)

    assert run.errors == ""
    assert run.exit_code == 0
    assert "on_failure is pause: not approved within 2s: create .shipline/approve-compare " \
           "to approve; default action pass" in run.report("production/1").details


def test_pipeline_judgment_every_problem_reported(tmp_path: Path) -> None:
    """Problems that the schema cannot see are all reported, each at its own line."""
    bad = PIPELINE.replace(
        "      - {name: latency, query: \"latency:{group}\", direction: increase}",
        "      - {name: latency, query: \"latency:{group}\", direction: increase}\n"
        "      - {name: errors, query: \"errors:{group}\"}\n"
        "      - {name: latency, query: \"other:{group}\"}\n"
        "      - {name: errors, query: \"more:{group}\"}\n"
        "    score: {pass: 50, marginal: 60}",
    )

    run = run_pipeline(bad, directory=tmp_path)

    file = tmp_path / "shipline.yml"
    assert run.exit_code == 2
    assert run.errors.splitlines() == [
        f"{file}:15:16: analyses.compare.metrics[2].name: invalid 'metrics': metric "
        f"'latency' appears twice; give each metric its own name",
        f"{file}:16:16: analyses.compare.metrics[3].name: invalid 'metrics': metric "
        f"'errors' appears twice; give each metric its own name",
        f"{file}:17:12: analyses.compare.score: invalid 'score': 'marginal' (60) is above "
        f"'pass' (50); set marginal at or below pass",
    ]


def test_pipeline_judgment_passed_metrics_verbose(tmp_path: Path) -> None:
    """A passed step shows its details, one line per metric, with -v only."""
    data = {"latency:baseline": BASELINE, "latency:canary": list(reversed(BASELINE))}
    (tmp_path / "series.json").write_text(json.dumps(data), encoding="utf-8")
    line = ("1. 2027-01-15T08:05:00Z successful: latency: Pass (U=450, p=1, baseline n=30, "
            "canary n=30, mean 99.8333 -> 99.8333, +0.0%)")

    quiet = run_pipeline(PIPELINE, directory=tmp_path)
    verbose = run_pipeline(PIPELINE, directory=tmp_path, args=["-v"])

    assert quiet.exit_code == 0
    assert line not in quiet.output
    assert verbose.exit_code == 0
    assert line in verbose.output
