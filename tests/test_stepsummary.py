"""The GitHub step summary: Markdown table, Mermaid charts and the size limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.exitcodes import ExitCode
from pipeline.mermaid import MAX_POINTS, MAX_TASKS, canary_weights, label, timeline
from pipeline.plan import Plan, Stage
from pipeline.report import Outcome, StepReport
from pipeline.runner import RunResult, StageResult
from pipeline.stepsummary import render_summary

START = 1_700_000_000.0


def report(name: str, outcome: Outcome = Outcome.PASSED, **fields: Any) -> StepReport:
    fields.setdefault("started_at", START)
    fields.setdefault("duration", 1.5)
    return StepReport(step_id=f"id-{name}", name=name, kind="deploy", outcome=outcome,
                      **fields)


def run_result(*stages: tuple[str, list[StepReport]], exit_code: ExitCode = ExitCode.OK,
               warnings: list[str] | None = None) -> RunResult:
    plan_stages = tuple(Stage(name, ()) for name, _ in stages)
    plan = Plan("shop", Path("shipline.yml"), plan_stages, {}, {}, (), {})
    results = [
        StageResult(stage, Outcome.PASSED, reports)
        for stage, (_, reports) in zip(plan_stages, stages, strict=True)
    ]
    return RunResult(plan, results, exit_code, 12.0, warnings=warnings or [])


def no_mask(text: str) -> str:
    return text


def test_render_summary_heading_and_table() -> None:
    result = run_result(
        ("build", [report("compile"), report("lint", Outcome.SKIPPED, message="off")]),
        ("prod", [report("deploy web", Outcome.FAILED, message="a | b <script>"),
                  report("deploy web", rollback=True, message="restored")]),
        exit_code=ExitCode.FAILED, warnings=["slack: HTTP 500"],
    )
    outputs = {"deployed-version": "1.`2", "rolled-back": "true"}
    text = render_summary(result, outputs, mask=no_mask)

    assert text.startswith(
        "## shipline: shop\n\n"
        "**failed** (exit 1) in 12s, deployed version `1.'2`, rolled back\n"
        "- warning: slack: HTTP 500\n\n"
        "| Stage | Step | Outcome | Duration | Message |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| build | compile | passed | 1s500ms |  |\n"
        "| build | lint | skipped |  | off |\n"
        "| prod | deploy web | **failed** | 1s500ms | a \\| b &lt;script&gt; |\n"
        "| prod | rollback: deploy web | passed | 1s500ms | restored |\n\n"
        "```mermaid\ngantt\n"
    )


def test_render_summary_masks_names_and_messages() -> None:
    result = run_result(("prod", [report("use hunter22", message="token hunter22")]))
    text = render_summary(result, {}, mask=lambda t: t.replace("hunter22", "***"))

    assert "hunter22" not in text
    assert "| prod | use *** | passed | 1s500ms | token *** |" in text


def test_render_summary_whole_stage_skipped() -> None:
    result = run_result(("prod", []))
    result.stages[0].skipped_reason = "needs 'build', which failed"
    text = render_summary(result, {}, mask=no_mask)

    assert "| prod | | skipped | | needs 'build', which failed |" in text


def test_render_summary_within_budget_drops_charts_first() -> None:
    result = run_result(("prod", [report(f"step {n}") for n in range(5)]))
    full = render_summary(result, {}, mask=no_mask)
    budget = full.index("```mermaid") + 100
    text = render_summary(result, {}, mask=no_mask, budget=budget)

    assert len(text.encode("utf-8")) <= budget
    assert "```mermaid" not in text
    assert "| prod | step 4 | passed |" in text
    assert text.endswith("_Charts left out to keep the summary under GitHub's size limit._\n")


def test_render_summary_within_budget_cuts_rows() -> None:
    result = run_result(("prod", [report(f"step {n}", message="m" * 150) for n in range(50)]))
    text = render_summary(result, {}, mask=no_mask, budget=3000, junit_report=True)

    assert len(text.encode("utf-8")) <= 3000
    assert "| prod | step 0 |" in text
    assert "| prod | step 49 |" not in text
    assert "more row(s) left out to keep the summary under GitHub's size limit; the JUnit " \
           "report has every step._\n" in text


def test_render_summary_cut_rows_without_junit() -> None:
    result = run_result(("prod", [report(f"step {n}", message="m" * 150) for n in range(50)]))
    text = render_summary(result, {}, mask=no_mask, budget=3000)

    assert "JUnit" not in text
    assert "more row(s) left out to keep the summary under GitHub's size limit; run with " \
           "--junitxml PATH for a report of every step._\n" in text


def test_render_summary_one_mebibyte_limit() -> None:
    reports = [report(f"step {n}", message="é" * 200) for n in range(3000)]
    text = render_summary(run_result(("prod", reports)), {}, mask=no_mask)

    assert len(text.encode("utf-8")) <= 1024 * 1024
    assert "more row(s) left out" in text


def test_render_summary_empty_when_heading_does_not_fit() -> None:
    assert render_summary(run_result(("prod", [report("a")])), {}, mask=no_mask,
                          budget=10) == ""


def test_timeline_tasks() -> None:
    result = run_result(
        ("build", [report("compile", duration=2.0)]),
        ("prod: eu", [report("deploy; web #1", Outcome.FAILED, started_at=START + 2),
                      report("skip", Outcome.SKIPPED),
                      report("deploy; web #1", rollback=True, started_at=START + 4,
                             duration=0.0)]),
    )
    chart = timeline(result, no_mask)

    assert chart is not None
    assert chart.drawn
    assert chart.text == (
        "```mermaid\n"
        "gantt\n"
        "    title Timeline\n"
        "    dateFormat x\n"
        "    axisFormat %H:%M:%S\n"
        "    section build\n"
        "    compile :done, 1700000000000, 1700000002000\n"
        "    section prod eu\n"
        "    deploy web 1 :crit, 1700000002000, 1700000003500\n"
        "    rollback deploy web 1 :done, 1700000004000, 1700000004001\n"
        "```"
    )


def test_timeline_without_times() -> None:
    assert timeline(run_result(("prod", [report("a", started_at=0.0)])), no_mask) is None


def test_timeline_too_many_tasks() -> None:
    chart = timeline(run_result(("prod", [report(f"s{n}") for n in range(MAX_TASKS + 1)])),
                     no_mask)

    assert chart is not None
    assert not chart.drawn
    assert chart.text == "_The timeline of 201 steps is left out: a chart shows at most 200._"


def test_canary_weights_chart() -> None:
    weights = [{"time": START, "weight": 0}, {"time": START + 30, "weight": 20},
               {"time": START + 95, "weight": 100, "requested": 100}]
    result = run_result(("prod", [report('deploy "v2"', data={"weights": weights})]))
    charts = canary_weights(result, no_mask)

    assert [chart.text for chart in charts] == [
        "```mermaid\n"
        "xychart-beta\n"
        '    title "Canary weight of deploy v2 in stage prod"\n'
        '    x-axis "time since the first change" ["+0.0s", "+30.0s", "+1m35s"]\n'
        '    y-axis "weight (%)" 0 --> 100\n'
        "    line [0, 20, 100]\n"
        "```"
    ]


def test_canary_weights_ignores_rollbacks_and_bad_points() -> None:
    weights = [{"time": START, "weight": 10}, {"time": "x", "weight": 5}, "junk"]
    result = run_result(("prod", [
        report("a", data={"weights": weights}),
        report("a", rollback=True, data={"weights": weights}),
        report("b", data={"weights": "none"}),
    ]))
    charts = canary_weights(result, no_mask)

    assert len(charts) == 1
    assert "    line [10]\n" in charts[0].text


def test_canary_weights_too_many_points() -> None:
    weights = [{"time": START + n, "weight": n % 100} for n in range(MAX_POINTS + 1)]
    charts = canary_weights(run_result(("prod", [report("a", data={"weights": weights})])),
                            no_mask)

    assert [chart.drawn for chart in charts] == [False]
    assert charts[0].text == ("_Canary weight of a in stage prod: 101 weight changes are "
                              "left out: a chart shows at most 100._")


def test_label_fallback_and_length() -> None:
    assert label(" :;# ", "step") == "step"
    assert label("x" * 100, "step") == "x" * 60
