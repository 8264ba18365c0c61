"""check_report_path on real folders: writable ones, and /proc and /sys, where nobody,
not even root, can create a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.reportpath import check_report_path


def test_check_report_path_accepts_missing_folders(tmp_path: Path) -> None:
    check_report_path(tmp_path / "reports" / "deep" / "junit.xml", "--junitxml")

    assert list(tmp_path.iterdir()) == []


def test_check_report_path_keeps_existing_file(tmp_path: Path) -> None:
    report = tmp_path / "deploy.env"
    report.write_text("KEEP=1\n")

    check_report_path(report, "--dotenv")

    assert report.read_text() == "KEEP=1\n"
    assert list(tmp_path.iterdir()) == [report]


def test_check_report_path_rejects_sys_folder() -> None:
    with pytest.raises(UsageError) as raised:
        check_report_path(Path("/sys/shipline-report.xml"), "--junitxml")

    assert str(raised.value) == (
        "--junitxml /sys/shipline-report.xml: cannot create a file in the folder '/sys' "
        "(Permission denied); give a path in a writable folder")


def test_check_report_path_rejects_proc_folder() -> None:
    # The reason differs between root (no such file) and other users (permission).
    with pytest.raises(UsageError) as raised:
        check_report_path(Path("/proc/missing/deploy.env"), "--dotenv")

    assert str(raised.value).startswith(
        "--dotenv /proc/missing/deploy.env: cannot create a file in the folder '/proc' (")
    assert str(raised.value).endswith("); give a path in a writable folder")

