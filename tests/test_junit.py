"""Tests of the JUnit XML reporter.

tests/data/jenkins-junit-10.xsd is ``junit-10.xsd`` from jenkinsci/xunit-plugin
(src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd, last
changed in commit ae25da5089d4f94ac6c4669bf736e4d416cc4665), MIT license, unchanged.
It defines neither ``file`` and ``line`` on ``<testcase>`` nor ``skipped`` on
``<testsuites>``, so the schema tests remove those attributes before validating.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from lxml import etree

from pipeline.diagnostics import Mark
from pipeline.junit import SuiteRecord, clean_line, clean_text, render_junit, write_junit
from pipeline.report import Outcome, StepReport

XSD_PATH = Path(__file__).parent / "data" / "jenkins-junit-10.xsd"
SECRET = "hunter2-s3cr3t"


def mask_secret(text: str) -> str:
    return text.replace(SECRET, "***")


def make_report(name: str, outcome: Outcome = Outcome.PASSED, **fields: Any) -> StepReport:
    return StepReport(step_id=f"id-{name}", name=name, kind="deploy", outcome=outcome, **fields)


def sample_suites() -> list[SuiteRecord]:
    """A run that uses every outcome, a rollback and a stage skipped as a whole."""
    build = SuiteRecord(
        "build",
        [
            make_report("compile", duration=1.5, started_at=1_700_000_000.0),
            make_report("lint", Outcome.SKIPPED, message="disabled by rule"),
            make_report("scan", Outcome.BLOCKED, message="2 high findings", details="CVE-1\nCVE-2"),
        ],
    )
    production = SuiteRecord(
        "production",
        [
            make_report(
                "deploy web",
                Outcome.FAILED,
                message="",
                duration=2.25,
                mark=Mark("shipline.yml", 14, 7),
            ),
            make_report("deploy web", Outcome.ROLLBACK_FAILED, message="web-2 down", rollback=True),
            make_report("notify", Outcome.ERROR, message="plugin raised KeyError"),
            make_report("wait", Outcome.INTERRUPTED, message="SIGTERM"),
            make_report("lock", Outcome.LOCKED, message="held by run 41"),
        ],
    )
    after = SuiteRecord("smoke", [], skipped_reason="needs 'production', which failed")
    return [build, production, after]


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def case_elements(data: bytes) -> list[etree._Element]:
    return list(parse(data).iter("testcase"))


def only_case(data: bytes) -> etree._Element:
    cases = case_elements(data)
    assert len(cases) == 1
    return cases[0]


def render_one(report: StepReport, **options: Any) -> bytes:
    return render_junit("shop", [SuiteRecord("production", [report])], **options)


def schema_errors(root: etree._Element) -> list[str]:
    schema = etree.XMLSchema(etree.parse(str(XSD_PATH)))
    schema.validate(root)
    return [error.message for error in schema.error_log]


def test_render_junit_valid_against_jenkins_xsd() -> None:
    root = parse(render_junit("shop", sample_suites(), mask=mask_secret))
    for case in root.iter("testcase"):
        case.attrib.pop("file", None)
        case.attrib.pop("line", None)

    assert schema_errors(root) == []


def test_render_junit_schema_rejects_only_known_attributes() -> None:
    root = parse(render_junit("shop", sample_suites()))

    assert schema_errors(root) == [
        "Element 'testcase', attribute 'file': The attribute 'file' is not allowed.",
        "Element 'testcase', attribute 'line': The attribute 'line' is not allowed.",
    ]


def test_render_junit_starts_with_xml_declaration() -> None:
    data = render_junit("shop", sample_suites())

    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')


def test_render_junit_counts_match_junitparser() -> None:
    xml = JUnitXml.fromstring(render_junit("shop", sample_suites()))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    for suite in xml:
        results = [result for case in suite for result in case.result]
        counted = {
            "tests": len(list(suite)),
            "failures": sum(isinstance(result, Failure) for result in results),
            "errors": sum(isinstance(result, Error) for result in results),
            "skipped": sum(isinstance(result, Skipped) for result in results),
        }
        assert suite.tests == counted["tests"], suite.name
        assert suite.failures == counted["failures"], suite.name
        assert suite.errors == counted["errors"], suite.name
        assert suite.skipped == counted["skipped"], suite.name
        for key, value in counted.items():
            totals[key] += value

    assert xml.tests == totals["tests"]
    assert xml.failures == totals["failures"]
    assert xml.errors == totals["errors"]
    assert sum(suite.skipped for suite in xml) == totals["skipped"]


def test_render_junit_counts_per_stage() -> None:
    root = parse(render_junit("shop", sample_suites()))
    counts = {
        suite.get("name"): tuple(
            suite.get(key) for key in ("tests", "failures", "errors", "skipped")
        )
        for suite in root.iter("testsuite")
    }

    assert counts == {
        "build": ("3", "1", "0", "1"),
        "production": ("5", "4", "1", "0"),
        "smoke": ("1", "0", "0", "1"),
    }
    assert [root.get(key) for key in ("tests", "failures", "errors", "skipped")] == [
        "9",
        "5",
        "1",
        None,
    ]


def test_render_junit_suite_and_total_time() -> None:
    root = parse(render_junit("shop", sample_suites()))
    times = {suite.get("name"): suite.get("time") for suite in root.iter("testsuite")}

    assert times == {"build": "1.500", "production": "2.250", "smoke": "0.000"}
    assert root.get("time") == "3.750"


def test_render_junit_testcase_time_three_decimals() -> None:
    case = only_case(render_one(make_report("deploy", duration=1.23456)))

    assert case.get("time") == "1.235"


@pytest.mark.parametrize("duration", [-1.0, math.nan, math.inf])
def test_render_junit_invalid_duration_is_zero(duration: float) -> None:
    case = only_case(render_one(make_report("deploy", duration=duration)))

    assert case.get("time") == "0.000"


def test_render_junit_timestamp_of_first_start() -> None:
    reports = [
        make_report("a", started_at=0.0),
        make_report("b", started_at=1_700_000_005.0),
        make_report("c", started_at=1_700_000_000.9),
    ]
    suite = parse(render_junit("shop", [SuiteRecord("build", reports)])).find("testsuite")
    assert suite is not None

    assert suite.get("timestamp") == "2023-11-14T22:13:20+00:00"


def test_render_junit_timestamp_unknown_left_out() -> None:
    suite = parse(render_one(make_report("deploy"))).find("testsuite")
    assert suite is not None

    assert "timestamp" not in suite.attrib


def test_render_junit_names_and_classname() -> None:
    root = parse(render_junit("shop", sample_suites()))

    assert root.get("name") == "shop"
    assert [suite.get("name") for suite in root.iter("testsuite")] == [
        "build",
        "production",
        "smoke",
    ]
    assert [case.get("classname") for case in root.iter("testcase")][:4] == [
        "shop.build",
        "shop.build",
        "shop.build",
        "shop.production",
    ]


def test_render_junit_file_and_line_from_mark() -> None:
    case = only_case(render_one(make_report("deploy", mark=Mark("ci/shipline.yml", 14, 7))))

    assert case.get("file") == "ci/shipline.yml"
    assert case.get("line") == "14"


def test_render_junit_no_mark_no_file() -> None:
    case = only_case(render_one(make_report("deploy")))

    assert "file" not in case.attrib
    assert "line" not in case.attrib


def test_render_junit_passed_has_no_child() -> None:
    case = only_case(render_one(make_report("deploy")))

    assert len(case) == 0


@pytest.mark.parametrize(
    ("outcome", "tag", "result_type"),
    [
        (Outcome.FAILED, "failure", "failed"),
        (Outcome.BLOCKED, "failure", "blocked"),
        (Outcome.ROLLBACK_FAILED, "failure", "rollback_failed"),
        (Outcome.INTERRUPTED, "failure", "interrupted"),
        (Outcome.LOCKED, "failure", "locked"),
        (Outcome.ERROR, "error", "error"),
        (Outcome.SKIPPED, "skipped", None),
    ],
)
def test_render_junit_outcome_mapping(outcome: Outcome, tag: str, result_type: str | None) -> None:
    report = make_report("deploy", outcome, message="went wrong", details="full story")
    case = only_case(render_one(report))
    children = list(case)

    assert [child.tag for child in children] == [tag]
    assert children[0].get("type") == result_type
    assert children[0].get("message") == "went wrong"


def test_render_junit_failure_text_is_details() -> None:
    report = make_report("deploy", Outcome.FAILED, message="short", details="line 1\nline 2")
    failure = only_case(render_one(report)).find("failure")
    assert failure is not None

    assert failure.text == "line 1\nline 2"


def test_render_junit_failure_text_falls_back_to_message() -> None:
    report = make_report("deploy", Outcome.FAILED, message="health check failed")
    failure = only_case(render_one(report)).find("failure")
    assert failure is not None

    assert failure.text == "health check failed"


def test_render_junit_empty_failure_message_still_failure() -> None:
    case = only_case(render_one(make_report("deploy", Outcome.FAILED, message="")))
    failure = case.find("failure")
    assert failure is not None

    assert failure.get("message") == "failed"
    assert failure.get("type") == "failed"
    assert failure.text is None


def test_render_junit_empty_error_message_is_outcome() -> None:
    error = only_case(render_one(make_report("deploy", Outcome.ERROR))).find("error")
    assert error is not None

    assert error.get("message") == "error"


def test_render_junit_skipped_without_message() -> None:
    skipped = only_case(render_one(make_report("deploy", Outcome.SKIPPED))).find("skipped")
    assert skipped is not None

    assert skipped.get("message") == "skipped"


def test_render_junit_skipped_step_takes_stage_reason() -> None:
    suite = SuiteRecord(
        "deploy",
        [make_report("rollout", Outcome.SKIPPED)],
        skipped_reason="needs 'build', which failed",
    )
    skipped = only_case(render_junit("shop", [suite])).find("skipped")
    assert skipped is not None

    assert skipped.get("message") == "needs 'build', which failed"


def test_render_junit_whole_stage_skipped() -> None:
    suite = SuiteRecord("deploy", [], skipped_reason="needs 'build', which failed")
    case = only_case(render_junit("shop", [suite]))
    skipped = case.find("skipped")
    assert skipped is not None

    assert case.get("name") == "deploy"
    assert case.get("classname") == "shop.deploy"
    assert skipped.get("message") == "needs 'build', which failed"


def test_render_junit_empty_stage_no_testcase() -> None:
    root = parse(render_junit("shop", [SuiteRecord("empty", [])]))
    suite = root.find("testsuite")
    assert suite is not None

    assert len(suite) == 0
    assert suite.get("tests") == "0"


def test_render_junit_rollback_testcase_present() -> None:
    reports = [
        make_report("deploy web", Outcome.FAILED, message="canary failed"),
        make_report("deploy web", Outcome.PASSED, rollback=True),
    ]
    cases = case_elements(render_junit("shop", [SuiteRecord("production", reports)]))

    assert [case.get("name") for case in cases] == ["deploy web", "rollback: deploy web"]
    assert len(cases[1]) == 0


def test_render_junit_passed_rollback_says_what_it_did() -> None:
    reports = [
        make_report("deploy web", Outcome.FAILED, message="canary failed"),
        make_report("deploy web", Outcome.PASSED, rollback=True,
                    message="weight of slot 'green' back to 0",
                    details="instance  result\nweb-1     removed\n"),
    ]
    cases = case_elements(render_junit("shop", [SuiteRecord("production", reports)]))

    [output] = cases[1]
    assert output.tag == "system-out"
    assert output.text == (
        "weight of slot 'green' back to 0\ninstance  result\nweb-1     removed\n")


def test_render_junit_duplicate_names_unique() -> None:
    suites = [
        SuiteRecord("staging", [make_report("deploy"), make_report("deploy")]),
        SuiteRecord(
            "production",
            [
                make_report("deploy"),
                make_report("deploy (2)"),
                make_report("deploy", rollback=True),
                make_report("deploy", rollback=True),
            ],
        ),
        SuiteRecord("deploy", [], skipped_reason="needs 'production', which failed"),
    ]
    names = [case.get("name") for case in case_elements(render_junit("shop", suites))]

    assert names == [
        "deploy",
        "deploy (2)",
        "deploy (3)",
        "deploy (2) (2)",
        "rollback: deploy",
        "rollback: deploy (2)",
        "deploy (4)",
    ]


def test_render_junit_empty_name_uses_step_id() -> None:
    report = StepReport(step_id="stages[1].steps[0]", name="", kind="gate", outcome=Outcome.PASSED)
    case = only_case(render_one(report))

    assert case.get("name") == "stages[1].steps[0]"


def test_render_junit_system_out_has_output() -> None:
    case = only_case(render_one(make_report("deploy", output="deployed 4 instances\n")))
    system_out = case.find("system-out")
    assert system_out is not None

    assert system_out.text == "deployed 4 instances\n"


def test_render_junit_no_output_no_system_out() -> None:
    case = only_case(render_one(make_report("deploy")))

    assert case.find("system-out") is None


def test_render_junit_carriage_return_round_trip() -> None:
    report = make_report("deploy", Outcome.FAILED, details="a\r\nb\rc", output="10%\r50%\r100%\r\n")
    data = render_one(report)
    case = only_case(data)
    failure = case.find("failure")
    system_out = case.find("system-out")
    assert failure is not None
    assert system_out is not None

    assert b"&#13;" in data
    assert failure.text == "a\r\nb\rc"
    assert system_out.text == "10%\r50%\r100%\r\n"


def test_render_junit_carriage_return_round_trip_junitparser() -> None:
    data = render_one(make_report("deploy", output="10%\r100%\r\n"))
    xml = JUnitXml.fromstring(data)
    case = next(iter(next(iter(xml))))

    assert case.system_out == "10%\r100%\r\n"


def test_render_junit_non_ascii_kept() -> None:
    report = make_report(
        "déployer café 日本", Outcome.FAILED, message="café 日本", output="ünïcödé ✓"
    )
    data = render_one(report)
    case = only_case(data)
    failure = case.find("failure")
    system_out = case.find("system-out")
    assert failure is not None
    assert system_out is not None

    assert "café 日本".encode() in data
    assert case.get("name") == "déployer café 日本"
    assert failure.get("message") == "café 日本"
    assert system_out.text == "ünïcödé ✓"


def test_render_junit_ansi_escapes_removed() -> None:
    report = make_report(
        "\x1b[1mdeploy\x1b[0m",
        Outcome.FAILED,
        message="\x1b[31merror\x1b[0m: rollout failed",
        output="\x1b]0;window title\x07\x1b[2K\x1b[1Gdone \x1b]8;;https://x.test\x1b\\link\x1b]8;;\x1b\\",
    )
    data = render_one(report)
    case = only_case(data)
    failure = case.find("failure")
    system_out = case.find("system-out")
    assert failure is not None
    assert system_out is not None

    assert b"\x1b" not in data
    assert case.get("name") == "deploy"
    assert failure.get("message") == "error: rollout failed"
    assert system_out.text == "done link"


def test_render_junit_control_chars_removed() -> None:
    report = make_report("deploy", Outcome.FAILED, details="a\x00b\x07c\x1b\td\x0be\tf\ng")
    data = render_one(report)
    failure = only_case(data).find("failure")
    assert failure is not None

    assert b"\x00" not in data
    assert b"\x07" not in data
    assert b"\x1b" not in data
    assert failure.text == "abc\tde\tf\ng"


def test_render_junit_secret_masked_everywhere() -> None:
    report = make_report(
        f"deploy {SECRET}",
        Outcome.FAILED,
        message=f"token {SECRET} rejected",
        details=f"Authorization: Bearer {SECRET}",
        output=f"curl -H 'token: {SECRET}'\nsplit: hunter2\x1b[0m-s3cr3t\n",
        mark=Mark(f"/tmp/{SECRET}/shipline.yml", 3, 1),
    )
    suites = [SuiteRecord(f"stage-{SECRET}", [report])]
    data = render_junit(f"pipe-{SECRET}", suites, mask=mask_secret)
    failure = only_case(data).find("failure")
    assert failure is not None

    assert SECRET.encode() not in data
    assert b"hunter2" not in data
    assert failure.get("message") == "token *** rejected"


def test_render_junit_huge_output_truncated() -> None:
    output = "start\n" + "x" * 200_000 + "\nerror at the end"
    data = render_one(make_report("deploy", output=output), max_text=1_000)
    system_out = only_case(data).find("system-out")
    assert system_out is not None
    text = system_out.text
    assert text is not None

    assert len(text) <= 1_000
    assert text.startswith("start\nxxx")
    assert text.endswith("xxx\nerror at the end")
    assert "\n... [truncated 199062 characters] ...\n" in text


def test_render_junit_message_one_line_bounded() -> None:
    message = "first line\nsecond\tline  " + "y" * 2_000
    failure = only_case(render_one(make_report("deploy", Outcome.FAILED, message=message))).find(
        "failure"
    )
    assert failure is not None
    text = failure.get("message")
    assert text is not None

    assert len(text) <= 500
    assert text.startswith("first line second line yyy")
    assert text.endswith("yyy ... [truncated 1555 characters]")


def test_render_junit_negative_max_text_rejected() -> None:
    with pytest.raises(ValueError, match=r"^max_text must be 0 or more, got -1$"):
        render_junit("shop", [], max_text=-1)


def test_render_junit_no_stages() -> None:
    root = parse(render_junit("shop", []))

    assert len(root) == 0
    assert root.get("tests") == "0"


def test_clean_text_keeps_whitespace_and_unicode() -> None:
    assert clean_text("a\tb\nc\rd café 日本 \u0085 \U0001f680", 100) == (
        "a\tb\nc\rd café 日本 \u0085 \U0001f680"
    )


def test_clean_text_removes_invalid_xml_chars() -> None:
    assert clean_text("a\ud800b\udfffc\ufffed\uffffe\x0cf\x1fg", 100) == "abcdefg"


def test_clean_text_removes_csi_and_osc() -> None:
    text = "\x1b[38;5;196mred\x1b[0m \x1b]2;title\x1b\\plain \x1b(Bcharset \x1b7saved\x1b8"

    assert clean_text(text, 100) == "red plain charset saved"


def test_clean_text_masks_before_and_after_stripping() -> None:
    text = f"{SECRET} and hunter2\x1b[0m-s3cr3t and hunter2\x00-s3cr3t"

    assert clean_text(text, 100, mask=mask_secret) == "*** and *** and ***"


def test_clean_text_short_text_unchanged() -> None:
    assert clean_text("x" * 100, 100) == "x" * 100


def test_clean_text_truncates_middle_exactly() -> None:
    text = "a" * 60 + "b" * 60

    assert clean_text(text, 80) == "a" * 22 + "\n... [truncated 76 characters] ...\n" + "b" * 22


def test_clean_text_limit_smaller_than_marker() -> None:
    assert clean_text("abcdefghijklmnopqrstuvwxyz", 5) == "abcde"


def test_clean_text_negative_limit_rejected() -> None:
    with pytest.raises(ValueError, match=r"^limit must be 0 or more, got -5$"):
        clean_text("text", -5)


def test_clean_line_folds_whitespace() -> None:
    assert clean_line("  one\r\ntwo\t three\n") == "one two three"


def test_write_junit_creates_file_and_parents(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "junit.xml"

    write_junit(path, "shop", sample_suites(), mask=mask_secret)

    assert path.read_bytes() == render_junit("shop", sample_suites(), mask=mask_secret)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["junit.xml"]


def test_write_junit_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text("old report")

    write_junit(path, "shop", [])

    assert path.read_bytes() == render_junit("shop", [])
    assert os.listdir(tmp_path) == ["junit.xml"]


def test_write_junit_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.mkdir()

    with pytest.raises(IsADirectoryError):
        write_junit(path, "shop", sample_suites())

    assert os.listdir(tmp_path) == ["junit.xml"]
    assert path.is_dir()


def test_render_junit_warnings_in_system_err() -> None:
    warning = "notification 'failed' via slack failed"
    data = render_junit("shop", sample_suites(), warnings=[warning])
    root = parse(data)
    for case in root.iter("testcase"):
        case.attrib.pop("file", None)
        case.attrib.pop("line", None)
    [suite] = [s for s in root.iter("testsuite") if s.get("name") == "warnings"]

    assert suite.get("tests") == "0"
    assert suite.find("system-err").text == warning
    assert schema_errors(root) == []
