"""Freeze windows: periods when deploying to an environment is blocked.

A window is either fixed, with ``start`` and ``end``, or recurring, with a ``cron``
expression for its starts and a ``duration``. ``timezone`` (an IANA name such as
``Europe/Berlin``, default ``UTC``) is the zone of the cron expression and of dates and
date-times written without an offset. Windows are evaluated when a deploy step starts,
with the run's clock, not when the pipeline file was written.

Fixed windows: ``start`` and ``end`` are ISO 8601 dates or date-times. A date alone
starts at midnight for ``start`` and, for ``end``, includes that whole day, so
``start: 2026-12-24, end: 2026-12-26`` freezes three days. The window contains ``start``
and excludes ``end``.

Recurring windows: the cron expression (five fields, read by ``croniter``) is matched
against wall-clock time in the window's zone, and ``duration`` is wall-clock time too:
``cron: "0 17 * * FRI"`` with ``duration: 64h`` ends on Monday at 09:00 local time on
every weekend, whether or not a daylight saving change falls inside it. Wall-clock times
that a change skips or repeats are resolved like :mod:`zoneinfo` does with ``fold=0``.
A skipped time (02:30 on a spring-forward night) is read with the offset before the
change, so it falls one hour later on the clock (03:30). A repeated time means its
first occurrence. A window whose start was skipped keeps its wall-clock length from the
later start, so a daily 02:30 window of one hour runs from 03:30 to 04:30 that night.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pipeline.durations import parse_duration

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = [
    "ActiveWindow",
    "FreezeError",
    "FreezeProblem",
    "FreezeWindow",
    "active_windows",
    "freeze_problems",
    "parse_windows",
]

#: Earlier cron starts that are checked besides the latest one, because a daylight saving
#: change can make an earlier window end later on the absolute clock.
_EXTRA_STARTS = 2


class FreezeError(ValueError):
    """An invalid freeze window; the message names the key and the fix."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class FreezeWindow:
    """One parsed ``freeze:`` entry of an environment."""

    #: ``name``, else ``reason``, else ``freeze[N]``: how messages name the window.
    label: str
    reason: str
    zone: ZoneInfo
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    #: Seconds of wall-clock time.
    duration: float = 0.0


@dataclass(frozen=True)
class ActiveWindow:
    """A window that contains the moment asked about, with the bounds of that occurrence."""

    window: FreezeWindow
    start: datetime
    end: datetime

    def describe(self) -> str:
        """Name the window and its bounds in its own zone, for messages."""
        text = (f"freeze window {self.window.label!r} "
                f"({_show(self.start)} to {_show(self.end)})")
        if self.window.reason and self.window.reason != self.window.label:
            text += f": {self.window.reason}"
        return text


def _show(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


# -- parsing -----------------------------------------------------------------------------


def parse_windows(entries: Any) -> list[FreezeWindow]:
    """Parse an environment's ``freeze`` list.

    Raises FreezeError for the first invalid entry, with ``freeze[N]`` before the
    message and ``key`` set. An entry is invalid when it mixes or lacks the two forms,
    or has an unknown zone, a date that does not parse, an end not after the start, or
    an invalid cron expression or duration.
    """
    if entries is None:
        return []
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise FreezeError("freeze: expected a list of windows")

    windows = []
    for index, entry in enumerate(entries):
        try:
            windows.append(_parse_window(entry, index))
        except FreezeError as exc:
            raise FreezeError(f"freeze[{index}]: {exc}", exc.key) from exc
    return windows


@dataclass(frozen=True)
class FreezeProblem:
    """One invalid part of a ``freeze`` list, for ``shipline validate``."""

    #: The entry's index, or None when the list itself is invalid.
    index: int | None
    #: The offending key of the entry, when there is one.
    key: str | None
    message: str


def freeze_problems(entries: Any) -> list[FreezeProblem]:
    """Check every entry of an environment's ``freeze`` list and return each invalid one.

    Unlike :func:`parse_windows`, which stops at the first invalid entry, this reports
    them all, at most one problem per entry. The messages have no ``freeze[N]`` prefix,
    because ``index`` names the entry.
    """
    if entries is None:
        return []
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return [FreezeProblem(None, None, "expected a list of windows")]

    problems = []
    for index, entry in enumerate(entries):
        try:
            _parse_window(entry, index)
        except FreezeError as exc:
            problems.append(FreezeProblem(index, exc.key, str(exc)))
    return problems


def _parse_window(entry: Any, index: int) -> FreezeWindow:
    if not isinstance(entry, Mapping):
        raise FreezeError("expected a mapping")
    zone = _zone(entry.get("timezone", "UTC"))
    reason = str(entry.get("reason") or "")
    label = str(entry.get("name") or reason or f"freeze[{index}]")

    fixed = "start" in entry or "end" in entry
    recurring = "cron" in entry or "duration" in entry
    if fixed and recurring:
        raise FreezeError("use either 'start' and 'end' or 'cron' and 'duration', not both")
    if fixed:
        start = _moment(entry.get("start"), "start", zone, end_of_day=False)
        end = _moment(entry.get("end"), "end", zone, end_of_day=True)
        if end <= start:
            raise FreezeError(f"'end' ({entry['end']}) must be after 'start' "
                              f"({entry['start']})", "end")
        return FreezeWindow(label, reason, zone, start=start, end=end)
    if recurring:
        cron = _cron(entry.get("cron"))
        duration = _duration(entry.get("duration"))
        return FreezeWindow(label, reason, zone, cron=cron, duration=duration)
    raise FreezeError("give 'start' and 'end', or 'cron' and 'duration'")


def _zone(name: Any) -> ZoneInfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name:
        raise FreezeError(f"invalid 'timezone' {name!r}: use an IANA name such as "
                          f"Europe/Berlin", "timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FreezeError(f"unknown 'timezone' {name!r}: use an IANA name such as "
                          f"Europe/Berlin", "timezone") from None


def _moment(value: Any, key: str, zone: ZoneInfo, *, end_of_day: bool) -> datetime:
    """Parse a date or date-time; a date is midnight, or the next midnight for an end."""
    if value is None:
        raise FreezeError(f"missing '{key}': a fixed window needs 'start' and 'end'", key)
    text = str(value)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end_of_day:
                day += timedelta(days=1)
            return datetime.combine(day, time(), zone)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FreezeError(f"invalid '{key}' {text!r}: use an ISO 8601 date (2026-12-24) or "
                          f"date-time (2026-12-24T18:00:00+01:00)", key) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _cron(value: Any) -> str:
    from croniter import croniter

    if not isinstance(value, str) or not croniter.is_valid(value) or len(value.split()) != 5:
        raise FreezeError(f"invalid 'cron' {value!r}: use five fields, minute hour day "
                          f"month weekday, for example \"0 17 * * FRI\"", "cron")
    return value


def _duration(value: Any) -> float:
    if value is None:
        raise FreezeError("missing 'duration': a recurring window needs 'cron' and "
                          "'duration'", "duration")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise FreezeError(f"invalid 'duration': {exc}", "duration") from exc
    if seconds <= 0:
        raise FreezeError("invalid 'duration': must be more than 0", "duration")
    return seconds


# -- evaluating --------------------------------------------------------------------------


def active_windows(windows: Sequence[FreezeWindow], now: float) -> list[ActiveWindow]:
    """Return the windows that contain the Unix time ``now``, in the order given."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    active = []
    for window in windows:
        occurrence = _occurrence(window, moment)
        if occurrence is not None:
            active.append(occurrence)
    return active


def _occurrence(window: FreezeWindow, moment: datetime) -> ActiveWindow | None:
    if window.start is not None and window.end is not None:
        if window.start <= moment < window.end:
            return ActiveWindow(window, window.start, window.end)
        return None
    return _recurring_occurrence(window, moment)


def _recurring_occurrence(window: FreezeWindow, moment: datetime) -> ActiveWindow | None:
    """Find the occurrence of a cron window that contains ``moment``, if any.

    Cron starts are enumerated on naive wall-clock time in the window's zone, backwards
    from an hour after the local time of ``moment`` so that a repeated hour is covered.
    The latest start at or before ``moment`` has the latest end, give or take a daylight
    saving change, so it and a few earlier starts are enough to check.
    """
    from croniter import croniter

    assert window.cron is not None
    local = moment.astimezone(window.zone).replace(tzinfo=None)
    starts = croniter(window.cron, local + timedelta(hours=1))
    checked = 0
    while checked <= _EXTRA_STARTS:
        naive_start: datetime = starts.get_prev(datetime)
        start = naive_start.replace(tzinfo=window.zone)
        if start > moment:
            continue
        checked += 1
        # A start that the clock skipped is read an hour later; the end moves with it.
        # (Through UTC, because astimezone() to a datetime's own zone changes nothing.)
        local_start = start.astimezone(timezone.utc).astimezone(window.zone)
        shift = local_start.replace(tzinfo=None) - naive_start
        wall_end = naive_start + shift + timedelta(seconds=window.duration)
        end = wall_end.replace(tzinfo=window.zone)
        if moment < end:
            return ActiveWindow(window, local_start, end)
    return None
