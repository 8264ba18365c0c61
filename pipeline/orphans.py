"""Commands that a killed run left running: recorded in the journal, stopped by recovery.

Every command runs in its own process group, so SIGKILL of ``shipline run`` does not
reach it: a deploy command can go on and overwrite an instance after the next run's
recovery restored it. So while a deployment is unfinished, the run appends a
``process`` journal entry for each command it starts, except read-only probes (see
``announce`` of :func:`pipeline.commands.run_command`). The entry records the host,
the process id (which is also the process group id) and the process start time from
``/proc/PID/stat``. Recovery on the same host stops each such process group that
still runs: SIGTERM, then SIGKILL after a grace period. A process whose start time
differs from the recorded one is a new process that reuses the id, and is left alone.

Recovery cannot reach processes on another host (runners that share a PostgreSQL
store), so it names them in its message instead. Without ``/proc`` (not Linux) no
start time is recorded, and recovery leaves the group alone because it cannot tell
the command from a new process with the same id.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.commands import add_start_listener, remove_start_listener
from pipeline.instancetable import plural
from pipeline.state import JournalAppend, JournalEntry, StateError
from pipeline.state.records import DetailValue

if TYPE_CHECKING:
    from pipeline.plan import Step
    from pipeline.staterun import StateWorker

logger = logging.getLogger("shipline")

#: The journal operation of a started command.
PROCESS_OPERATION = "process"

#: Seconds a process group gets to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE = 5.0

#: Seconds between two checks of whether a stopped process group has exited.
_POLL_INTERVAL = 0.05

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessRecord:
    """A command started by a run: where it runs and how to recognise it later.

    ``start_time`` is field 22 of ``/proc/PID/stat``, in clock ticks after boot, or
    None where there is no ``/proc``. ``command`` is the program name only, because
    the arguments may contain secrets.
    """

    host: str
    pid: int
    pgid: int
    start_time: int | None
    command: str

    def details(self) -> dict[str, DetailValue]:
        """Return the journal details that :meth:`from_details` reads back."""
        return {"host": self.host, "pid": self.pid, "pgid": self.pgid,
                "start_time": self.start_time, "command": self.command}

    @classmethod
    def from_details(cls, details: object) -> ProcessRecord | None:
        """Read a record from journal details; None when a field is missing or invalid."""
        if not isinstance(details, dict):
            return None
        host, pid, pgid = details.get("host"), details.get("pid"), details.get("pgid")
        start, command = details.get("start_time"), details.get("command", "")
        if not (isinstance(host, str) and isinstance(pid, int) and isinstance(pgid, int)):
            return None
        return cls(host, pid, pgid, start if isinstance(start, int) else None, str(command))


@dataclass
class OrphanReport:
    """The outcome of stopping the commands of a killed run, for the recovery message."""

    #: Process group ids that were still running on this host and were stopped.
    stopped: list[int] = field(default_factory=list)
    #: Commands recorded on other hosts, which may still be running there.
    elsewhere: list[ProcessRecord] = field(default_factory=list)

    def summary(self) -> str:
        """Return one sentence for the recovery message, or "" when there is nothing."""
        parts = []
        if self.stopped:
            groups = ", ".join(str(group) for group in self.stopped)
            parts.append(f"stopped {plural(len(self.stopped), 'command')} that the stopped "
                         f"run left running (process groups {groups})")
        hosts = sorted({record.host for record in self.elsewhere})
        if hosts:
            parts.append(f"commands of the stopped run may still be running on "
                         f"{', '.join(hosts)}: stop them there, because they can change "
                         f"instances after this recovery")
        return "; ".join(parts)


class ProcessJournal:
    """The journal of the commands that a run starts: a ``process`` entry in each
    unfinished deployment of the run, written through the run's StateWorker.

    A command that starts while no deployment of the run is unfinished is not recorded.
    NOTE: a SIGKILL between the start of a command and its journal write leaves that
    one command unrecorded.
    """

    def __init__(self, worker: StateWorker) -> None:
        self._worker = worker
        self._active: dict[str, Step] = {}
        self._guard = threading.Lock()
        self._listening = False

    def start(self, deployment_id: str, step: Step) -> None:
        """Record the commands started from now on in the journal of ``deployment_id``."""
        with self._guard:
            self._active[deployment_id] = step
            if not self._listening:
                add_start_listener(self._record)
                self._listening = True

    def finish(self, deployment_id: str) -> None:
        """Stop recording commands for ``deployment_id``, which has ended."""
        with self._guard:
            self._active.pop(deployment_id, None)

    def close(self) -> None:
        """Stop recording commands at all."""
        remove_start_listener(self._record)

    def _record(self, argv: Sequence[str], pid: int) -> None:
        with self._guard:
            active = list(self._active.items())
        if not active:
            return
        details = record_of(argv, pid).details()
        for deployment_id, step in active:
            try:
                self._append(deployment_id, step, details)
            except StateError as error:
                logger.warning("recording command %s (pid %d) in deployment %s failed: %s",
                               details["command"], pid, deployment_id, error)

    def _append(self, deployment_id: str, step: Step,
                details: dict[str, DetailValue]) -> None:
        # Batched with the entries other commands of the batch append at the same time.
        self._worker.append_journal(JournalAppend(
            deployment_id, step.stage, step.id, PROCESS_OPERATION, (), None, details))


def current_host() -> str:
    """Return this machine's host name, as recorded with each command."""
    return socket.gethostname()


def record_of(argv: Sequence[str], pid: int) -> ProcessRecord:
    """Describe a command that has just started as the leader of its process group."""
    return ProcessRecord(current_host(), pid, pid, process_start_time(pid),
                         os.path.basename(argv[0]) if argv else "")


def records_in(entries: Iterable[JournalEntry]) -> list[ProcessRecord]:
    """Return the process records of a deployment's journal, oldest first."""
    records = []
    for entry in entries:
        if entry.operation != PROCESS_OPERATION:
            continue
        record = ProcessRecord.from_details(dict(entry.details))
        if record is not None:
            records.append(record)
    return records


def process_start_time(pid: int) -> int | None:
    """Return the start time of process ``pid`` in clock ticks after boot, or None when
    it does not exist, is a zombie, or there is no ``/proc``."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def stop_orphans(records: Sequence[ProcessRecord], grace: float = STOP_GRACE) -> OrphanReport:
    """Stop the process groups of ``records`` that still run on this host.

    Each group is checked before it is signalled: its leader must be gone or have the
    recorded start time. Records of other hosts are returned in the report unchanged.
    """
    report = OrphanReport()
    host = current_host()
    seen: set[int] = set()
    for record in records:
        if record.host != host:
            report.elsewhere.append(record)
            continue
        if record.pgid in seen:
            continue
        seen.add(record.pgid)
        if _stop_group(record, grace):
            report.stopped.append(record.pgid)
    return report


def _stop_group(record: ProcessRecord, grace: float) -> bool:
    """Stop one recorded process group; return whether any of it was still running."""
    if record.start_time is None:
        logger.warning("cannot check whether %s (process group %d) still runs: no start "
                       "time was recorded, so it is left alone", record.command, record.pgid)
        return False
    leader_start = process_start_time(record.pid)
    if leader_start is not None and leader_start != record.start_time:
        logger.info("process %d is a new process that reuses the id of %s; left alone",
                    record.pid, record.command)
        return False
    if not _group_members(record):
        return False

    logger.warning("%s (process group %d) of a stopped run is still running; stopping it",
                   record.command, record.pgid)
    _signal_group(record.pgid, signal.SIGTERM)
    if _wait_until_gone(record, grace):
        return True
    logger.warning("%s (process group %d) still running %ss after SIGTERM; sending SIGKILL",
                   record.command, record.pgid, grace)
    _signal_group(record.pgid, signal.SIGKILL)
    if not _wait_until_gone(record, grace):
        logger.error("%s (process group %d) did not exit after SIGKILL", record.command,
                     record.pgid)
    return True


def _wait_until_gone(record: ProcessRecord, seconds: float) -> bool:
    # Real time on purpose: the processes run on the system clock, not a run's clock.
    end = time.monotonic() + seconds
    while _group_members(record):
        if time.monotonic() >= end:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _group_members(record: ProcessRecord) -> list[int]:
    """Return the live (not zombie) processes of the record's group that started no
    earlier than its leader, so that members of a later group with the same id are not
    counted."""
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z" or int(fields[2]) != record.pgid:
            continue
        if record.start_time is not None and int(fields[19]) < record.start_time:
            continue
        members.append(int(entry.name))
    return members


def _stat_fields(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/PID/stat`` from field 3 (the state) on, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    return text.rpartition(")")[2].split()


def _signal_group(group: int, signum: signal.Signals) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        logger.warning("cannot send %s to process group %d: permission denied",
                       signum.name, group)
