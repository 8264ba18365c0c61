"""``--events PATH``: write every run event as one JSON object per line (JSON Lines).

Each line has the fields ``schema_version``, ``time`` (RFC 3339, UTC, when the line was
written), ``event``, ``run_id`` (a random UUID per run) and ``pipeline``, plus the
fields of its event. ``schemas/events.schema.json`` documents every event and field.

A run writes ``run_start`` first and ``run_finish`` last. Each stage writes
``stage_start`` and ``stage_finish``, and a skipped stage writes only ``stage_finish``.
Each step writes ``step_start``, then the ``measurement`` and ``analysis`` lines found
in its report's ``data``, then ``step_finish``. A skipped step writes only
``step_finish``. Each rollback writes one ``rollback`` line. ``notification_sent`` and
``notification_failed`` come from the notification worker whenever a delivery ends, so
they can appear between any two lines before ``run_finish``: the run waits for pending
deliveries (at most ``notify_timeout``) before it finishes.

Every line is masked with the run's secrets, written and flushed as it happens, so a
run that is killed leaves every line written before the kill. ``-`` writes to standard
output, where the terminal progress also goes: add ``-p no:terminal`` to keep standard
output pure JSON Lines.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from pipeline.clock import Clock
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.masking import Masker
    from pipeline.notification import Delivery, Notification
    from pipeline.plan import Plan, Stage, Step
    from pipeline.report import StepReport
    from pipeline.runner import RunResult, StageResult

logger = logging.getLogger("shipline")

#: Version of the line format; raised when a field changes meaning or is removed.
SCHEMA_VERSION = 1

#: The plugin name under which the reporter is registered (the module is ``eventlog``).
REPORTER_NAME = "eventreporter"


# -- analyses in step reports ------------------------------------------------------------


@dataclass(frozen=True)
class MeasurementRecord:
    """One measurement of an analysis, as stored in a step report's ``data``."""

    #: Unix seconds when the measurement started.
    time: float
    #: Metric name to value; ``None`` means the metric had no data or is not a number.
    values: Mapping[str, float | None]
    verdict: str
    message: str
    #: Metric name to the JSON value as measured (a number, list or map), with ``None``
    #: for no data and for non-finite numbers.
    json_values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisRecord:
    """One analysis run found in a step report's ``data["analyses"]``."""

    name: str
    #: 1-based number of the strategy step (a canary step) that ran it, if recorded.
    strategy_step: int | None
    verdict: str
    message: str
    measurements: tuple[MeasurementRecord, ...]
    #: The policy action after the verdict (``continue``, ``abort``, ``pass``, ``retry``,
    #: ``pause``) and its note; empty when the plugin did not record one.
    action: str = ""
    action_message: str = ""


def analyses_in(report: StepReport) -> list[AnalysisRecord]:
    """Read the analysis runs that a deploy step stored in its report's ``data``.

    Strategies store :meth:`pipeline.analysismodel.AnalysisResult.to_data` output,
    with a ``step`` number, in the list ``data["analyses"]``. Entries and measurements
    of another shape (a third-party plugin's own data) are skipped without an error.
    """
    entries = report.data.get("analyses")
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return []

    records = []
    for entry in entries:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            records.append(_analysis_record(entry))
    return records


def _analysis_record(entry: Mapping[str, Any]) -> AnalysisRecord:
    step = entry.get("step")
    raw_measurements = entry.get("measurements")
    if not isinstance(raw_measurements, Sequence) or isinstance(raw_measurements, str):
        raw_measurements = ()

    measurements = tuple(
        MeasurementRecord(
            time=float(item["time"]),
            values={str(name): _number_or_none(value)
                    for name, value in item["values"].items()},
            verdict=str(item.get("verdict", "")),
            message=str(item.get("message", "")),
            json_values={str(name): _json_value(value)
                         for name, value in item["values"].items()},
        )
        for item in raw_measurements
        if isinstance(item, Mapping)
        and isinstance(item.get("time"), (int, float))
        and isinstance(item.get("values"), Mapping)
    )
    return AnalysisRecord(
        name=str(entry["name"]),
        strategy_step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        verdict=str(entry.get("verdict", "")),
        message=str(entry.get("message", "")),
        measurements=measurements,
        action=str(entry.get("action") or ""),
        action_message=str(entry.get("action_message") or ""),
    )


def _json_value(value: Any) -> Any:
    """Return ``value`` as JSON data: non-finite numbers become ``None``, other types text."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return str(value)


def _number_or_none(value: Any) -> float | None:
    """Return ``value`` as a finite float, or ``None`` for no data, NaN and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# -- JSON --------------------------------------------------------------------------------


def rfc3339(unix_seconds: float) -> str:
    """Format Unix seconds as RFC 3339 UTC with milliseconds: ``2027-01-15T08:00:00.000Z``."""
    stamp = datetime.fromtimestamp(unix_seconds, timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_json_value(value: Any) -> Any:
    """Return ``value`` as data that ``json.dumps`` accepts and every JSON parser reads.

    Mapping keys become strings, tuples and other sequences become lists, NaN and
    infinities become ``null`` (JSON has no such numbers), and any other object becomes
    its ``str()``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_value(item) for item in value]
    return str(value)


# -- the writer --------------------------------------------------------------------------


class EventLog:
    """Writes event lines to one text stream. Safe to call from several threads.

    A write error (disk full, a closed pipe) is logged once, with the path, and ends
    the log: later events are dropped, and the run goes on as if there were no log.
    """

    def __init__(self, stream: IO[str], name: str, masker: Masker, clock: Clock,
                 *, owns_stream: bool) -> None:
        import uuid  # Imported here: it imports platform, which start-up does not need.

        self.stream = stream
        self.name = name
        self.masker = masker
        self.clock = clock
        self.owns_stream = owns_stream
        self.run_id = str(uuid.uuid4())
        self.pipeline = ""
        self._lock = threading.Lock()
        self._closed = False

    def emit(self, event: str, fields: Mapping[str, Any]) -> None:
        """Write one line for ``event`` with the common fields and ``fields``, masked."""
        record = {
            "schema_version": SCHEMA_VERSION,
            "time": rfc3339(self.clock.time()),
            "event": event,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            **fields,
        }
        line = json.dumps(self.masker.mask_data(to_json_value(record)), allow_nan=False)

        with self._lock:
            if self._closed:
                logger.debug("event log %s is closed; dropped event %s", self.name, event)
                return
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError) as exc:
                self._closed = True
                logger.error("writing the event log %s failed, later events are dropped: %s",
                             self.name, exc)

    def close(self) -> None:
        """Stop writing, and close the stream unless it is standard output."""
        with self._lock:
            self._closed = True
            if not self.owns_stream:
                return
            try:
                self.stream.close()
            except OSError as exc:
                logger.error("closing the event log %s failed: %s", self.name, exc)


def open_event_log(target: str, config: Config) -> EventLog:
    """Open the event log named by ``--events``: ``-`` or a file path.

    A file is created, with its missing parent directories, and truncated. Raises
    :class:`~pipeline.errors.UsageError` when it cannot be, so the command stops before
    the run changes anything.
    """
    if target == "-":
        return EventLog(config.stdout, "<stdout>", config.masker, config.clock,
                        owns_stream=False)

    path = config.invocation_dir / Path(target)
    # The same checks and messages as the other report options, before anything opens.
    from pipeline.reportpath import check_report_path

    check_report_path(Path(target), "--events")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = path.open("w", encoding="utf-8", newline="\n")
    except OSError as exc:
        raise UsageError(f"--events: cannot open {target} for writing: {exc.strerror or exc}") \
            from exc
    return EventLog(stream, str(path), config.masker, config.clock, owns_stream=True)


# -- the reporter ------------------------------------------------------------------------


def _stage_fields(stage: Stage | None) -> dict[str, Any]:
    if stage is None:
        return {"stage": None, "environment": None}
    return {"stage": stage.name, "environment": stage.environment}


class EventReporter:
    """Turns run hooks into event lines."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    @hookimpl
    def shipline_run_start(self, plan: Plan) -> None:
        self.log.pipeline = plan.name
        self.log.emit("run_start", {
            "file": str(plan.file),
            "stages": [stage.name for stage in plan.stages],
        })

    @hookimpl
    def shipline_stage_start(self, stage: Stage) -> None:
        self.log.emit("stage_start", _stage_fields(stage))

    @hookimpl
    def shipline_step_start(self, step: Step, context: RunContext) -> None:
        self.log.emit("step_start", {
            **_stage_fields(context.stage),
            "step_id": step.id,
            "name": step.name,
            "kind": step.kind,
            "type": step.type,
            "plugin": step.plugin,
        })

    @hookimpl
    def shipline_step_report(self, report: StepReport, context: RunContext) -> None:
        where = _stage_fields(context.stage)
        if report.rollback:
            self.log.emit("rollback", {**where, **_report_fields(report)})
            return

        for analysis in analyses_in(report):
            self._emit_analysis(analysis, report, where)

        self.log.emit("step_finish", {
            **where,
            **_report_fields(report),
            "kind": report.kind,
            "started_at": rfc3339(report.started_at) if report.started_at else None,
            "data": report.data,
        })

    def _emit_analysis(self, analysis: AnalysisRecord, report: StepReport,
                       where: Mapping[str, Any]) -> None:
        about = {
            **where,
            "step_id": report.step_id,
            "analysis": analysis.name,
            "strategy_step": analysis.strategy_step,
        }
        for number, measurement in enumerate(analysis.measurements, start=1):
            self.log.emit("measurement", {
                **about,
                "number": number,
                "measured_at": rfc3339(measurement.time),
                "values": measurement.json_values,
                "verdict": measurement.verdict,
                "message": measurement.message,
            })
        fields = {
            **about,
            "verdict": analysis.verdict,
            "message": analysis.message,
            "measurements": len(analysis.measurements),
        }
        if analysis.action:
            fields["action"] = analysis.action
            fields["action_message"] = analysis.action_message
        self.log.emit("analysis", fields)

    @hookimpl
    def shipline_stage_finish(self, stage: Stage, result: StageResult) -> None:
        self.log.emit("stage_finish", {
            **_stage_fields(stage),
            "outcome": result.outcome.value,
            "duration": result.duration,
            "skipped_reason": result.skipped_reason,
            "failed_stage": result.failed_stage,
        })

    @hookimpl
    def shipline_run_finish(self, result: RunResult) -> None:
        self.log.emit("run_finish", {
            "exit_code": int(result.exit_code),
            "duration": result.duration,
            "interrupted": result.interrupted,
        })

    @hookimpl
    def shipline_notification_sent(self, notification: Notification,
                                   delivery: Delivery) -> None:
        event = "notification_sent" if delivery.ok else "notification_failed"
        self.log.emit(event, {
            "stage": notification.stage,
            "environment": notification.environment,
            "notification_event": notification.event,
            "uses": delivery.uses,
            "required": notification.required,
            "idempotency_key": notification.idempotency_key or None,
            "message": delivery.message,
        })


def _report_fields(report: StepReport) -> dict[str, Any]:
    return {
        "step_id": report.step_id,
        "name": report.name,
        "outcome": report.outcome.value,
        "message": report.message,
        "duration": report.duration,
        "plugin": report.plugin,
    }


# -- hooks -------------------------------------------------------------------------------


@hookimpl
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", metavar="PATH",
        help="write every run event as one JSON object per line to PATH, as it happens "
        "('-' for standard output; the format is schemas/events.schema.json)",
    )


@hookimpl
def shipline_configure(config: Config) -> None:
    target = config.option("events")
    if not target:
        return
    log = open_event_log(str(target), config)
    config.pluginmanager.register(EventReporter(log), name=REPORTER_NAME)


@hookimpl
def shipline_unconfigure(config: Config) -> None:
    reporter = config.pluginmanager.get_plugin(REPORTER_NAME)
    if isinstance(reporter, EventReporter):
        reporter.log.close()
        config.pluginmanager.unregister(reporter)
