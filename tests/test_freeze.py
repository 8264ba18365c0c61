"""Freeze windows: parsing, fixed and cron windows, daylight saving changes, and the
guard that blocks deploys unless ``--break-glass`` is given."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from pipeline import hookimpl
from pipeline.clock import FakeClock
from pipeline.freeze import FreezeError, active_windows, parse_windows
from pipeline.report import Outcome
from pipeline.testing import run_pipeline


def at(text: str) -> float:
    """Return the Unix time of an ISO 8601 date-time with an offset."""
    return datetime.fromisoformat(text).timestamp()


def active(entries: list[dict[str, Any]], when: str) -> list[str]:
    windows = parse_windows(entries)
    return [item.describe() for item in active_windows(windows, at(when))]


# -- fixed windows -----------------------------------------------------------------------


def test_fixed_window_contains_start_not_end() -> None:
    entry = {"start": "2026-12-24T18:00:00Z", "end": "2026-12-27T06:00:00Z", "reason": "holidays"}

    assert active([entry], "2026-12-24T17:59:59+00:00") == []
    assert active([entry], "2026-12-24T18:00:00+00:00") == [
        "freeze window 'holidays' (2026-12-24T18:00+00:00 to 2026-12-27T06:00+00:00)"
    ]
    assert active([entry], "2026-12-27T06:00:00+00:00") == []


def test_fixed_window_dates_include_end_day_in_zone() -> None:
    entry = {"name": "xmas", "start": "2026-12-24", "end": "2026-12-26",
             "timezone": "Europe/Berlin", "reason": "shops closed"}

    assert active([entry], "2026-12-23T23:00:00+00:00") == [
        "freeze window 'xmas' (2026-12-24T00:00+01:00 to 2026-12-27T00:00+01:00): shops closed"
    ]
    assert active([entry], "2026-12-26T22:59:00+00:00") != []
    assert active([entry], "2026-12-26T23:00:00+00:00") == []


def test_fixed_window_local_time_without_offset() -> None:
    entry = {"start": "2026-07-01T09:00", "end": "2026-07-01T10:00",
             "timezone": "America/New_York"}

    assert active([entry], "2026-07-01T13:00:00+00:00") == [
        "freeze window 'freeze[0]' (2026-07-01T09:00-04:00 to 2026-07-01T10:00-04:00)"
    ]


# -- recurring windows -------------------------------------------------------------------

WEEKEND = {"name": "weekend", "cron": "0 17 * * FRI", "duration": "64h",
           "timezone": "Europe/Berlin"}


def test_cron_window_weekend() -> None:
    assert active([WEEKEND], "2026-06-05T14:59:00+00:00") == []
    assert active([WEEKEND], "2026-06-05T15:00:00+00:00") == [
        "freeze window 'weekend' (2026-06-05T17:00+02:00 to 2026-06-08T09:00+02:00)"
    ]
    assert active([WEEKEND], "2026-06-08T06:59:00+00:00") != []
    assert active([WEEKEND], "2026-06-08T07:00:00+00:00") == []


def test_cron_window_fall_back() -> None:
    """Berlin leaves summer time on 2026-10-25: the window lasts 65 hours and still
    ends at 09:00 on Monday."""
    assert active([WEEKEND], "2026-10-26T07:59:00+00:00") == [
        "freeze window 'weekend' (2026-10-23T17:00+02:00 to 2026-10-26T09:00+01:00)"
    ]
    assert active([WEEKEND], "2026-10-26T08:00:00+00:00") == []


def test_cron_window_spring_forward() -> None:
    """Berlin starts summer time on 2026-03-29: the window lasts 63 hours."""
    assert active([WEEKEND], "2026-03-30T06:59:00+00:00") == [
        "freeze window 'weekend' (2026-03-27T17:00+01:00 to 2026-03-30T09:00+02:00)"
    ]
    assert active([WEEKEND], "2026-03-30T07:00:00+00:00") == []


def test_cron_window_skipped_start_moves_one_hour() -> None:
    """New York skips 02:00-03:00 on 2026-03-08: the 02:30 window runs 03:30-04:30."""
    nightly = [{"name": "backup", "cron": "30 2 * * *", "duration": "1h",
                "timezone": "America/New_York"}]

    assert active(nightly, "2026-03-08T07:29:00+00:00") == []
    assert active(nightly, "2026-03-08T08:00:00+00:00") == [
        "freeze window 'backup' (2026-03-08T03:30-04:00 to 2026-03-08T04:30-04:00)"
    ]
    assert active(nightly, "2026-03-08T08:30:00+00:00") == []


def test_cron_window_repeated_hour_uses_first() -> None:
    """New York repeats 01:00-02:00 on 2026-11-01. The 01:30 window starts at the first
    01:30 (EDT) and ends when the clock next shows 02:00, which is in EST."""
    nightly = [{"name": "batch", "cron": "30 1 * * *", "duration": "30m",
                "timezone": "America/New_York"}]

    assert active(nightly, "2026-11-01T05:29:00+00:00") == []
    assert active(nightly, "2026-11-01T05:30:00+00:00") == [
        "freeze window 'batch' (2026-11-01T01:30-04:00 to 2026-11-01T02:00-05:00)"
    ]
    assert active(nightly, "2026-11-01T06:45:00+00:00") != []
    assert active(nightly, "2026-11-01T07:00:00+00:00") == []


def test_cron_window_longer_than_period() -> None:
    hourly = [{"cron": "0 * * * *", "duration": "2h", "reason": "sync"}]

    assert active(hourly, "2026-06-05T10:30:00+00:00") == [
        "freeze window 'sync' (2026-06-05T10:00+00:00 to 2026-06-05T12:00+00:00)"
    ]


# -- invalid windows ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"start": "2026-12-24", "cron": "0 17 * * FRI"},
         "freeze[0]: use either 'start' and 'end' or 'cron' and 'duration', not both"),
        ({"reason": "x"}, "freeze[0]: give 'start' and 'end', or 'cron' and 'duration'"),
        ({"start": "2026-12-24"},
         "freeze[0]: missing 'end': a fixed window needs 'start' and 'end'"),
        ({"start": "24.12.2026", "end": "2026-12-26"},
         "freeze[0]: invalid 'start' '24.12.2026': use an ISO 8601 date (2026-12-24) or "
         "date-time (2026-12-24T18:00:00+01:00)"),
        ({"start": "2026-12-26", "end": "2026-12-24"},
         "freeze[0]: 'end' (2026-12-24) must be after 'start' (2026-12-26)"),
        ({"cron": "0 17 * * FRI", "duration": "2h", "timezone": "Mars/Olympus"},
         "freeze[0]: unknown 'timezone' 'Mars/Olympus': use an IANA name such as "
         "Europe/Berlin"),
        ({"cron": "every friday", "duration": "2h"},
         "freeze[0]: invalid 'cron' 'every friday': use five fields, minute hour day month "
         "weekday, for example \"0 17 * * FRI\""),
        ({"cron": "0 17 * * FRI"},
         "freeze[0]: missing 'duration': a recurring window needs 'cron' and 'duration'"),
        ({"cron": "0 17 * * FRI", "duration": 0}, "freeze[0]: invalid 'duration': must be more "
         "than 0"),
    ],
)
def test_parse_windows_invalid(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(FreezeError) as caught:
        parse_windows([entry])

    assert str(caught.value) == message


# -- the guard in a run ------------------------------------------------------------------

PIPELINE = """\
version: 1
name: shop
environments:
  production:
    target: {type: fake, version: "1.0"}
    freeze:
      - {name: weekend, cron: "0 17 * * FRI", duration: 64h, timezone: Europe/Berlin,
         reason: nobody on call}
stages:
  - name: production
    environment: production
    steps:
      - deploy: {version: "2.0", strategy: rolling}
"""

#: Saturday 2026-06-06 12:00 in Berlin, inside the weekend window.
SATURDAY = at("2026-06-06T12:00:00+02:00")
#: Wednesday 2026-06-10 12:00 in Berlin, outside it.
WEDNESDAY = at("2026-06-10T12:00:00+02:00")


class BreakGlassRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], str]] = []

    @hookimpl
    def shipline_break_glass(self, step, windows, reason) -> None:
        self.calls.append((step.id, [item.window.label for item in windows], reason))


def test_freeze_blocks_deploy_with_exit_3(tmp_path: Path) -> None:
    run = run_pipeline(PIPELINE, directory=tmp_path, clock=FakeClock(SATURDAY))

    report = run.report("production/1")
    assert run.exit_code == 3
    assert report.outcome == Outcome.BLOCKED
    assert report.message == (
        "deploy blocked by freeze window 'weekend' (2026-06-05T17:00+02:00 to "
        "2026-06-08T09:00+02:00): nobody on call; run with --break-glass REASON to deploy "
        "anyway"
    )
    assert "production" not in run.targets


def test_freeze_outside_window_deploys(tmp_path: Path) -> None:
    run = run_pipeline(PIPELINE, directory=tmp_path, clock=FakeClock(WEDNESDAY))

    assert run.exit_code == 0
    assert "break glass" not in run.report("production/1").details


def test_freeze_break_glass_deploys_and_records(tmp_path: Path) -> None:
    recorder = BreakGlassRecorder()

    run = run_pipeline(PIPELINE, directory=tmp_path, clock=FakeClock(SATURDAY),
                       plugins=[recorder], args=["--break-glass", "fix for outage 42"])

    report = run.report("production/1")
    assert run.exit_code == 0
    assert run.targets["production"].version("fake-1") == "2.0"
    assert report.details.splitlines()[0] == (
        "break glass: deployed inside freeze window 'weekend' (2026-06-05T17:00+02:00 to "
        "2026-06-08T09:00+02:00): nobody on call; reason: fix for outage 42"
    )
    assert report.data["break_glass"] == {
        "reason": "fix for outage 42",
        "windows": [{"name": "weekend", "start": "2026-06-05T17:00:00+02:00",
                     "end": "2026-06-08T09:00:00+02:00"}],
    }
    assert recorder.calls == [("production/1", ["weekend"], "fix for outage 42")]


def test_freeze_evaluated_at_run_time(tmp_path: Path) -> None:
    """The same file blocks on Saturday and deploys on Wednesday: nothing is decided
    when the file is loaded."""
    clock = FakeClock(WEDNESDAY)

    blocked = run_pipeline(PIPELINE, directory=tmp_path, clock=FakeClock(SATURDAY))
    passed = run_pipeline(PIPELINE, directory=tmp_path, clock=clock)

    assert (blocked.exit_code, passed.exit_code) == (3, 0)
    assert datetime.fromtimestamp(clock.time(), timezone.utc).weekday() == 2


def test_freeze_invalid_window_fails_validation(tmp_path: Path) -> None:
    bad = PIPELINE.replace("timezone: Europe/Berlin", "timezone: Europe/Berlín")

    run = run_pipeline(bad, directory=tmp_path)

    assert run.exit_code == 2
    assert run.errors == (
        f"{tmp_path / 'shipline.yml'}:7:72: environments.production.freeze[0].timezone: "
        f"unknown 'timezone' 'Europe/Berlín': use an IANA name such as Europe/Berlin"
    )


FROZEN_BADLY = """version: 1
name: shop
environments:
  production:
    target: {type: fake, version: "1.0"}
    freeze:
      - {name: ok, cron: "0 17 * * FRI", duration: 64h}
      - {cron: "every friday", duration: 2h}
      - {start: "2026-12-24"}
      - {start: "2026-12-26", end: "2026-12-24"}
      - {cron: "0 17 * * FRI", duration: 2h, timezone: Mars/Olympus}
stages:
  - name: production
    environment: production
    steps:
      - deploy: {version: "2.0", strategy: rolling}
"""


def test_freeze_every_invalid_window_reported(tmp_path: Path) -> None:
    run = run_pipeline(FROZEN_BADLY, directory=tmp_path)

    file = tmp_path / "shipline.yml"
    assert run.exit_code == 2
    assert run.errors.splitlines() == [
        f"{file}:8:16: environments.production.freeze[1].cron: invalid 'cron' 'every "
        f"friday': use five fields, minute hour day month weekday, for example "
        f"\"0 17 * * FRI\"",
        f"{file}:9:9: environments.production.freeze[2].end: missing 'end': a fixed window "
        f"needs 'start' and 'end'",
        f"{file}:10:36: environments.production.freeze[3].end: 'end' (2026-12-24) must be "
        f"after 'start' (2026-12-26)",
        f"{file}:11:56: environments.production.freeze[4].timezone: unknown 'timezone' "
        f"'Mars/Olympus': use an IANA name such as Europe/Berlin",
    ]


def test_freeze_break_glass_in_junit(tmp_path: Path) -> None:
    """A passed step has no failure text, so the override goes to its system-out."""
    report_file = tmp_path / "report.xml"

    run = run_pipeline(PIPELINE, directory=tmp_path, clock=FakeClock(SATURDAY),
                       args=["--break-glass", "fix for outage 42", "--junitxml",
                             str(report_file)])

    cases = [case for suite in JUnitXml.fromfile(str(report_file)) for case in suite]
    assert run.exit_code == 0
    assert cases[0].system_out == (
        "break glass: deployed inside freeze window 'weekend' (2026-06-05T17:00:00+02:00 "
        "to 2026-06-08T09:00:00+02:00); reason: fix for outage 42\n"
    )
