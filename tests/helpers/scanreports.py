"""Helpers for the scan tests: where the report files are and how to read one."""

from __future__ import annotations

from pathlib import Path

from pipeline.scan.detect import read_report
from pipeline.scan.finding import Finding

DATA = Path(__file__).resolve().parents[1] / "data" / "scan"
HANDWRITTEN = DATA / "handwritten"
REAL = DATA / "real"


def read_handwritten(name: str) -> tuple[str, list[Finding]]:
    return read_report(HANDWRITTEN / name, name)


def summary(findings: list[Finding]) -> list[tuple[str, str, str]]:
    """Return (id, severity, raw severity) of each finding, in report order."""
    return [(f.id, f.severity.label, f.raw_severity) for f in findings]
