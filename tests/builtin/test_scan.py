"""The scan step plugin, called as the runner calls it, on report files in tmp_path."""

from __future__ import annotations

import argparse
import datetime
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from helpers.scanreports import HANDWRITTEN, REAL
from pipeline.builtin import scan
from pipeline.clock import FakeClock
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.plan import Plan, Step, freeze
from pipeline.plugins import PluginRegistry
from pipeline.report import Outcome, StepReport
from pipeline.scan.reader import ReportError

# 2026-06-01 00:00 UTC
JUNE_FIRST = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc).timestamp()


def make_context(folder: Path) -> RunContext:
    plan = Plan(
        name="shop", file=folder / "shipline.yml", stages=(),
        environments=MappingProxyType({}), analyses=MappingProxyType({}), notifications=(),
        state=MappingProxyType({}),
    )
    config = Config(options=argparse.Namespace(), registry=PluginRegistry(),
                    clock=FakeClock(JUNE_FIRST))
    return RunContext(plan=plan, config=config)


def scan_step(uses: str, options: Mapping[str, Any]) -> Step:
    return Step(id="scan/1", name="scan images", kind="scan", type=uses,
                options=freeze(options), plugin="scan", stage="scan")


def copy(tmp_path: Path, source: Path, name: str | None = None) -> str:
    target = tmp_path / (name or source.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return str(target.relative_to(tmp_path))


def run(tmp_path: Path, uses: str, **options: Any) -> StepReport:
    report = scan.shipline_run_scan(scan_step(uses, options), make_context(tmp_path))
    assert report is not None
    return report


def test_scan_blocks_over_threshold(tmp_path: Path) -> None:
    name = copy(tmp_path, HANDWRITTEN / "trivy-schema2.json")

    report = run(tmp_path, "trivy", report=name)

    assert report.outcome is Outcome.FAILED
    assert report.message == "2 findings over the threshold: 1 critical, 1 high"
    assert report.details == (
        "reports: trivy-schema2.json (Trivy JSON, 3 findings)\n"
        "threshold: fail_on high\n"
        "counted: 1 critical, 1 high, 0 medium, 1 low, 0 unknown\n"
        "findings over the threshold:\n"
        "  critical CVE-2023-45853 zlib1g 1:1.2.13.dfsg-1 in registry.example/shop:1.4.2 "
        "(debian 12.5) (no fix)\n"
        "  high GHSA-952p-6rrq-rcjv micromatch 4.0.5 in "
        "app/node_modules/micromatch/package.json (fixed in 4.0.8)"
    )
    assert report.data["counts"] == {"critical": 1, "high": 1, "medium": 0, "low": 1,
                                     "unknown": 0}
    assert [f["id"] for f in report.data["blocking_findings"]] == [
        "CVE-2023-45853", "GHSA-952p-6rrq-rcjv",
    ]


def test_scan_passes_under_threshold(tmp_path: Path) -> None:
    name = copy(tmp_path, HANDWRITTEN / "trivy-schema2.json")

    report = run(tmp_path, "auto", report=[name], fail_on="critical", only_fixed=True)

    assert report.outcome is Outcome.PASSED
    assert report.message == (
        "2 findings, none over the threshold (fail_on critical; only_fixed)"
    )
    assert report.data["blocking_findings"] == []
    assert "left out: 1 without a fix (only_fixed)" in report.details.splitlines()


def test_scan_ignore_and_expired_entry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    name = copy(tmp_path, HANDWRITTEN / "trivy-schema2.json")
    ignore = [
        {"id": "CVE-2023-45853", "reason": "zlib minizip is not used", "expires": "2026-06-01"},
        {"id": "GHSA-952p-6rrq-rcjv", "reason": "build-time only", "expires": "2026-05-31"},
    ]

    with caplog.at_level(logging.WARNING, logger="shipline"):
        report = run(tmp_path, "trivy", report=name, ignore=ignore)

    assert report.message == "1 finding over the threshold: 1 high"
    assert report.details.splitlines()[3:6] == [
        "left out: 1 ignored",
        "ignored CVE-2023-45853 until 2026-06-01 (1 finding): zlib minizip is not used",
        "warning: the ignore entry for GHSA-952p-6rrq-rcjv expired on 2026-05-31 and no "
        "longer ignores it (reason was: build-time only)",
    ]
    assert caplog.messages == [
        "step scan/1: the ignore entry for GHSA-952p-6rrq-rcjv expired on 2026-05-31; its "
        "findings count again",
    ]


def test_scan_glob_and_duplicates_across_reports(tmp_path: Path) -> None:
    copy(tmp_path, HANDWRITTEN / "trivy-schema2.json", "reports/a.json")
    copy(tmp_path, HANDWRITTEN / "trivy-schema2.json", "reports/nested/b.json")

    report = run(tmp_path, "trivy", report="reports/**/*.json", fail_on="none")

    assert report.outcome is Outcome.PASSED
    assert report.details.splitlines()[:4] == [
        "reports: reports/a.json (Trivy JSON, 3 findings), reports/nested/b.json "
        "(Trivy JSON, 3 findings)",
        "threshold: fail_on none",
        "counted: 1 critical, 1 high, 0 medium, 1 low, 0 unknown",
        "left out: 3 duplicates",
    ]


def test_scan_report_named_twice_read_once(tmp_path: Path) -> None:
    name = copy(tmp_path, HANDWRITTEN / "trivy-schema2.json", "reports/a.json")

    report = run(tmp_path, "trivy", report=[name, f"./{name}", "reports/*.json"],
                 fail_on="none")

    assert report.outcome is Outcome.PASSED
    assert report.details.splitlines() == [
        "reports: reports/a.json (Trivy JSON, 3 findings)",
        "threshold: fail_on none",
        "counted: 1 critical, 1 high, 0 medium, 1 low, 0 unknown",
    ]


def test_scan_mixed_formats_with_auto(tmp_path: Path) -> None:
    names = [copy(tmp_path, REAL / "grype/busybox-epss-grype-0.94.json"),
             copy(tmp_path, REAL / "sarif/codeql-2.5.4-default-levels.json")]

    report = run(tmp_path, "auto", report=names, fail_on="none", max_count={"low": 10})

    assert report.outcome is Outcome.FAILED
    assert report.message == "59 findings over the threshold: 59 low (max 10)"
    assert report.details.splitlines()[0] == (
        "reports: busybox-epss-grype-0.94.json (Grype JSON, 15 findings), "
        "codeql-2.5.4-default-levels.json (SARIF, 72 findings)"
    )


def test_scan_unknown_severity_limited(tmp_path: Path) -> None:
    name = copy(tmp_path, REAL / "osv-scanner/malicious-package-no-severity.json")

    passing = run(tmp_path, "osv-scanner", report=name, fail_on="low")
    blocked = run(tmp_path, "osv-scanner", report=name, max_count={"unknown": 0})

    assert passing.outcome is Outcome.PASSED
    assert blocked.outcome is Outcome.FAILED
    assert blocked.message == "1 finding over the threshold: 1 unknown"


def test_scan_missing_report(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as caught:
        run(tmp_path, "trivy", report="trivy.json")

    assert str(caught.value) == (
        f"trivy.json: report file not found in {tmp_path}; check that the scanner ran and "
        "wrote it there"
    )


def test_scan_glob_matches_nothing(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as caught:
        run(tmp_path, "auto", report=["scans/*.sarif"])

    assert str(caught.value) == (
        f"scans/*.sarif: no report file matches in {tmp_path}; check that the scanner ran "
        "and wrote it there"
    )


def test_scan_wrong_format_for_uses(tmp_path: Path) -> None:
    name = copy(tmp_path, HANDWRITTEN / "grype-current.json")

    with pytest.raises(ReportError) as caught:
        run(tmp_path, "sarif", report=name)

    assert str(caught.value) == (
        "grype-current.json: expected a SARIF report, found Grype JSON; use 'uses: grype' or "
        "'uses: auto' for this file"
    )


def test_scan_other_types_not_handled(tmp_path: Path) -> None:
    assert scan.shipline_run_scan(scan_step("bandit", {"report": "x"}),
                                  make_context(tmp_path)) is None


def test_scan_schemas_cover_every_format() -> None:
    types = [schema.type for schema in scan.shipline_step_schemas()]

    assert types == ["auto", "trivy", "grype", "sarif", "osv-scanner", "cyclonedx"]


def test_scan_glob_in_folder_with_brackets(tmp_path: Path) -> None:
    folder = tmp_path / "build [1]"
    folder.mkdir()
    copy(folder, HANDWRITTEN / "grype-current.json", "out/grype.json")

    report = run(folder, "grype", report="out/*.json", fail_on="none")

    assert report.details.splitlines()[0] == "reports: out/grype.json (Grype JSON, 3 findings)"


def test_scan_absolute_report_path(tmp_path: Path) -> None:
    name = copy(tmp_path, HANDWRITTEN / "grype-current.json")
    absolute = str(tmp_path / name)

    report = run(tmp_path / "elsewhere", "auto", report=absolute, fail_on="none")

    assert report.details.splitlines()[0] == f"reports: {absolute} (Grype JSON, 3 findings)"
