"""Warnings of ``shipline plan --job-timeout`` from stage times."""

from __future__ import annotations

from pipeline.plantimes import StageTimes, job_timeout_warnings


def test_job_timeout_warnings_unknown_worst_case() -> None:
    times = [StageTimes("ship", None, None, None)]

    assert job_timeout_warnings(times, 1800) == [
        "stage 'ship': the worst case with rollback is unbounded or unknown, so the job "
        "timeout 30m may cancel a rollback; set timeouts on the stages and steps"
    ]


def test_job_timeout_warnings_within_limit() -> None:
    times = [StageTimes("ship", 60, 10, 1800)]

    assert job_timeout_warnings(times, 1800) == []
