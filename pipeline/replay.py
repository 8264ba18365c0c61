"""Recorded time series for replaying an analysis (``shipline analyze``).

A recording is a CSV or JSON file of rows. Each row has an optional time and the values
a provider would have returned then:

- CSV: a header row, then one row per point. The column ``time`` is the time; every
  other column is a value, named by its header (``result``, or metric names such as
  ``success_rate``). A cell is parsed as JSON (``0.25``, ``null``, ``[1, 2]``); an empty
  cell, ``NaN`` and ``null`` are no data.
- JSON: a list of objects. ``time`` is the time; ``values`` is a map of values, or else
  every other key is a value.

A time is a number of seconds or a duration (``90s``, ``5m``) from the start of the
analysis, or an ISO 8601 timestamp, counted from the first row's timestamp. A
measurement at time T reads the last row whose time is T or earlier, and gets no data
before the first row. Without times, measurement N reads row N and the last row after
that.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.durations import parse_duration
from pipeline.errors import UsageError

if TYPE_CHECKING:
    from pipeline.analysismodel import MeasurementRequest
    from pipeline.clock import Clock

__all__ = ["Recording", "ReplayProvider", "load_recording"]


@dataclass(frozen=True)
class Recording:
    """The rows of a recording: seconds from the start (``None`` without times) and values."""

    path: Path
    times: tuple[float, ...] | None
    rows: tuple[Mapping[str, Any], ...]

    def values_at(self, elapsed: float, number: int) -> Mapping[str, Any]:
        """Return the values of the row for a measurement ``elapsed`` seconds after the
        start, or for measurement ``number`` (from 1) when the rows have no times."""
        if self.times is None:
            return self.rows[min(number, len(self.rows)) - 1]

        index = None
        for position, time in enumerate(self.times):
            if time <= elapsed:
                index = position
        if index is None:
            return dict.fromkeys(self.rows[0], None)
        return self.rows[index]


class ReplayProvider:
    """A metric provider that returns recorded values at the clock's time."""

    def __init__(self, recording: Recording, clock: Clock, start: float) -> None:
        self.recording = recording
        self.clock = clock
        self.start = start

    def measure(self, request: MeasurementRequest, cancel: threading.Event) -> Mapping[str, Any]:
        """Return the row for this measurement's time; see the module docstring."""
        elapsed = self.clock.time() - self.start
        return self.recording.values_at(elapsed, request.number)


def load_recording(path: Path) -> Recording:
    """Read a CSV (``.csv``) or JSON recording.

    Raises UsageError naming the file, and the row or column, for a missing file,
    unparsable content, no rows, a row without values, or an invalid or decreasing time.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the recording: {exc}") from None

    raw = _csv_rows(path, text) if path.suffix.lower() == ".csv" else _json_rows(path, text)
    if not raw:
        raise UsageError(f"{path}: the recording has no rows")

    times = [row.pop("time", None) for row in raw]
    for number, row in enumerate(raw, start=1):
        if not row:
            raise UsageError(f"{path}: row {number} has no values")
    return Recording(path, _offsets(path, times), tuple(raw))


def _csv_rows(path: Path, text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for number, record in enumerate(reader, start=1):
        if None in record:
            raise UsageError(f"{path}: row {number} has more cells than the header")
        rows.append({str(column).strip(): _cell(path, number, str(column), cell)
                     for column, cell in record.items()})
    return rows


def _cell(path: Path, number: int, column: str, cell: str | None) -> Any:
    text = (cell or "").strip()
    if column.strip() == "time":
        return text or None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise UsageError(
            f"{path}: row {number}, column {column!r}: {text!r} is not a number or JSON"
        ) from None


def _json_rows(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(document, list) or not all(isinstance(r, Mapping) for r in document):
        raise UsageError(f"{path}: expected a JSON list of objects, one per point")

    rows = []
    for number, record in enumerate(document, start=1):
        values = record.get("values")
        if values is not None and not isinstance(values, Mapping):
            raise UsageError(f"{path}: row {number}: 'values' must be an object")
        row = dict(values) if values is not None else {
            key: value for key, value in record.items() if key != "time"}
        row["time"] = record.get("time")
        rows.append(row)
    return rows


def _offsets(path: Path, times: Sequence[Any]) -> tuple[float, ...] | None:
    """Return each row's seconds from the start, or ``None`` when no row has a time."""
    if all(time is None for time in times):
        return None
    offsets: list[float] = []
    first_stamp: datetime | None = None
    for number, time in enumerate(times, start=1):
        if time is None:
            raise UsageError(f"{path}: row {number} has no time, but other rows have one")
        stamp = _timestamp(time)
        if stamp is not None:
            first_stamp = first_stamp or stamp
            offset = (stamp - first_stamp).total_seconds()
        else:
            offset = _seconds(path, number, time)
        if offsets and offset < offsets[-1]:
            raise UsageError(f"{path}: row {number}: time {time!r} is earlier than the "
                             f"row before; sort the rows by time")
        offsets.append(offset)
    return tuple(offsets)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds(path: Path, number: int, value: Any) -> float:
    try:
        # A CSV cell is text, so "30" means 30 seconds as the number 30 does.
        return parse_duration(float(value) if isinstance(value, str) and _is_number(value)
                              else value)
    except ValueError:
        raise UsageError(
            f"{path}: row {number}: invalid time {value!r}: give seconds, a duration such "
            f"as 90s, or an ISO 8601 timestamp"
        ) from None
