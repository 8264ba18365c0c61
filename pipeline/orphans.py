"""Commands that a killed run left running: listed while they start, stopped by recovery.

Every command runs in its own process group, so SIGKILL of ``shipline run`` does not
reach it: a deploy command can go on and overwrite an instance after the next run's
recovery restored it. So while a deployment is unfinished, the run lists each command
it starts, except read-only probes (see ``announce`` of
:func:`pipeline.commands.run_command`), in a file of this host: the process id (which
is also the process group id), the range of clock ticks after boot in which the
process started (the unit of the start time in ``/proc/PID/stat``) and the program
name. The deployment's journal gets one ``processes`` entry with the host name and the
file's path. Recovery on the same host reads the file and stops each listed process
group that still runs: SIGTERM to all of them, then SIGKILL after one grace period. A
group whose leader started outside the listed range belongs to a new process that
reuses the id, and is left alone.

The list is a file rather than journal entries because a commit per command cost a
rolling deploy of 1,000 instances 3% to 5% of its time (docs/benchmarks.md). The file
only has to outlive the run's process, not the machine, because commands stop with the
machine: each line is written with one ``write()`` and no flush to disk, and the
kernel keeps it when the process is killed.

Recovery cannot reach processes on another host (runners that share a PostgreSQL
store), so it names the host in its message instead. Without ``/proc`` (not Linux) no
start time is listed, and recovery leaves the group alone because it cannot tell the
command from a new process with the same id.
"""

from __future__ import annotations

import functools
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

from pipeline.commands import add_start_listener, boot_clock_ns, remove_start_listener
from pipeline.fragmentcache import cache_dir
from pipeline.instancetable import plural
from pipeline.state import JournalAppend, JournalEntry

if TYPE_CHECKING:
    from pipeline.plan import Step
    from pipeline.staterun import StateWorker

logger = logging.getLogger("shipline")

#: The journal operation that records where the commands of a deployment are listed.
PROCESS_OPERATION = "processes"

#: Seconds a process group gets to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE = 5.0

#: Seconds between two checks of whether a stopped process group has exited.
_POLL_INTERVAL = 0.05

_PROC = Path("/proc")

#: The unit of process start times in /proc/PID/stat.
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def process_folder() -> Path:
    """Return the folder of the command lists: ``processes`` in shipline's cache folder."""
    return cache_dir() / "processes"


@dataclass(frozen=True)
class ProcessRecord:
    """A command started by a run, as listed: how to recognise it later.

    ``pid`` is also the id of the process group the command leads. ``started`` is the
    range of clock ticks after boot, both ends included, in which the process started,
    in the unit of field 22 of ``/proc/PID/stat``; None where there is no ``/proc``. A
    new process that reuses the id starts after the range, once the command has exited
    and been reaped. ``command`` is the program name only, because the arguments may
    contain secrets.
    """

    pid: int
    started: tuple[int, int] | None
    command: str

    def line(self) -> str:
        """Return the record as a line of a command list, which :meth:`from_line` reads."""
        start = "-" if self.started is None else f"{self.started[0]}-{self.started[1]}"
        command = " ".join(self.command.splitlines())
        return f"{self.pid} {start} {command}\n"

    @classmethod
    def from_line(cls, line: str) -> ProcessRecord | None:
        """Read a line of a command list; None when it is not a record."""
        fields = line.rstrip("\n").split(" ", 2)
        # A command's process id is never 0 or 1, and signalling group 0 would reach
        # the process that reads the list.
        if len(fields) != 3 or not fields[0].isdigit() or int(fields[0]) <= 1:
            return None
        pid, start, command = fields
        if start == "-":
            return cls(int(pid), None, command)
        first, _, last = start.partition("-")
        if not (first.isdigit() and last.isdigit()) or int(first) > int(last):
            return None
        return cls(int(pid), (int(first), int(last)), command)

    def started_at(self, start_time: int) -> bool:
        """Tell whether a process that started at ``start_time`` (ticks after boot) can
        be this command, rather than a later process with the same id."""
        return self.started is not None and self.started[0] <= start_time <= self.started[1]


@dataclass(frozen=True)
class ProcessList:
    """The location of one deployment's command list: a file on ``host``."""

    host: str
    path: Path

    def details(self) -> dict[str, str | None]:
        """Return the journal details that :meth:`from_details` reads back."""
        return {"host": self.host, "path": str(self.path)}

    @classmethod
    def from_details(cls, details: object) -> ProcessList | None:
        """Read a list's place from journal details; None when a field is missing."""
        if not isinstance(details, dict):
            return None
        host, path = details.get("host"), details.get("path")
        if not (isinstance(host, str) and isinstance(path, str) and path):
            return None
        return cls(host, Path(path))

    def read(self) -> list[ProcessRecord]:
        """Return the listed commands; raise OSError when the file cannot be read."""
        text = self.path.read_text(encoding="utf-8", errors="replace")
        records = [ProcessRecord.from_line(line) for line in text.splitlines()]
        return [record for record in records if record is not None]


@dataclass
class OrphanReport:
    """The outcome of stopping the commands of a killed run, for the recovery message."""

    #: Process group ids that were still running on this host and were stopped.
    stopped: list[int] = field(default_factory=list)
    #: Hosts whose commands may still be running there.
    elsewhere: list[str] = field(default_factory=list)
    #: Command lists of this host that could not be read.
    unreadable: list[Path] = field(default_factory=list)
    #: Command lists of this host that the journal names but that are gone.
    missing: list[Path] = field(default_factory=list)
    #: Command lists of this host whose commands were dealt with, and which were deleted.
    cleared: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """Return one sentence for the recovery message, or "" when there is nothing."""
        parts = []
        if self.stopped:
            groups = ", ".join(str(group) for group in self.stopped)
            parts.append(f"stopped {plural(len(self.stopped), 'command')} that the stopped "
                         f"run left running (process groups {groups})")
        if self.unreadable:
            files = ", ".join(str(path) for path in self.unreadable)
            parts.append(f"the list of the commands that the stopped run started cannot be "
                         f"read ({files}), so any that still run here were not stopped")
        if self.missing:
            files = ", ".join(str(path) for path in self.missing)
            parts.append(f"the list of the commands that the stopped run started is missing "
                         f"({files}), so any that still run here were not stopped")
        hosts = sorted(set(self.elsewhere))
        if hosts:
            parts.append(f"commands of the stopped run may still be running on "
                         f"{', '.join(hosts)}: stop them there, because they can change "
                         f"instances after this recovery")
        return "; ".join(parts)


class ProcessJournal:
    """Lists the commands that a run starts while a deployment of it is unfinished, in
    one file per deployment, and journals where each file is.

    A command that starts while no deployment of the run is unfinished is not listed.
    A list that cannot be written is logged and skipped: the deploy goes on, and a
    recovery after a kill cannot stop that deployment's commands.
    NOTE: a SIGKILL between the start of a command and its line leaves that one
    command unlisted.
    """

    def __init__(self, worker: StateWorker, folder: Path | None = None) -> None:
        self._worker = worker
        self._folder = folder
        self._host = current_host()
        #: Deployment id -> the open file descriptor and path of its list, and the seq
        #: of its ``processes`` journal entry. Replaced, never changed in place.
        self._files: dict[str, tuple[int, Path, int]] = {}
        #: Calls of _record writing now, and descriptors to close once none is.
        self._writers = 0
        self._retired: list[int] = []
        self._guard = threading.Lock()
        self._listening = False

    def start(self, deployment_id: str, step: Step) -> None:
        """List the commands started from now on for ``deployment_id``.

        Raises StateError when the journal entry cannot be written.
        """
        # Absolute, because the recovery may run in another working directory.
        folder = (self._folder or process_folder()).absolute()
        path = folder / f"{deployment_id}.txt"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                                 0o600)
        except OSError as exc:
            logger.warning("the commands of deployment %s are not listed, so a recovery "
                           "after a kill cannot stop them: %s", deployment_id, exc)
            return

        where = ProcessList(self._host, path)
        try:
            entry = self._worker.append_journal(JournalAppend(
                deployment_id, step.stage, step.id, PROCESS_OPERATION, (), None,
                where.details()))
        except BaseException:
            os.close(descriptor)
            _remove(path)
            raise
        with self._guard:
            self._files = {**self._files, deployment_id: (descriptor, path, entry.seq)}
            if not self._listening:
                add_start_listener(self._record)
                self._listening = True

    def finish(self, deployment_id: str, *, recorded: bool) -> None:
        """Stop listing commands for ``deployment_id``, which has ended.

        Once its outcome is ``recorded`` in the store, the list is deleted, because
        every command of the deployment has ended, and the journal entry that names it
        is marked done. Otherwise the list stays for the recovery of the deployment,
        which the store still shows unfinished.
        """
        with self._guard:
            opened = self._files.get(deployment_id)
            if opened is None:
                return
            # A new dict rather than a change to this one: a write may be going through it.
            self._files = {key: value for key, value in self._files.items()
                           if key != deployment_id}
            self._retire(opened[0])
        _descriptor, path, seq = opened
        if recorded:
            _remove(path)
            self._worker.complete_journal(deployment_id, seq)

    def close(self) -> None:
        """Stop listing commands at all. The lists of deployments that did not finish
        stay for the recovery."""
        remove_start_listener(self._record)
        with self._guard:
            opened, self._files = list(self._files.values()), {}
            for descriptor, _path, _seq in opened:
                self._retire(descriptor)

    def _record(self, argv: Sequence[str], pid: int, before: int | None) -> None:
        line = record_of(argv, pid, before).line().encode("utf-8", errors="replace")
        # The writes happen outside the guard, because a rolling deploy's threads would
        # queue on it during each write. Instead finish() and close() leave a descriptor
        # open while any write is under way: closed, its number could be reused by a
        # file opened meanwhile, which would then get the line.
        with self._guard:
            self._writers += 1
            files = self._files
        try:
            for deployment_id, (descriptor, _path, _seq) in files.items():
                try:
                    os.write(descriptor, line)
                except OSError as exc:
                    logger.warning("listing command %s (pid %d) of deployment %s failed: %s",
                                   argv[0] if argv else "", pid, deployment_id, exc)
        finally:
            with self._guard:
                self._writers -= 1
                if not self._writers:
                    self._close_retired()

    def _retire(self, descriptor: int) -> None:
        """Close ``descriptor`` once no write uses it; call with the guard held."""
        self._retired.append(descriptor)
        if not self._writers:
            self._close_retired()

    def _close_retired(self) -> None:
        for descriptor in self._retired:
            os.close(descriptor)
        self._retired.clear()


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("cannot delete the command list %s: %s", path, exc)


def current_host() -> str:
    """Return this machine's host name, as recorded with each command list."""
    return socket.gethostname()


def record_of(argv: Sequence[str], pid: int, before: int | None = None) -> ProcessRecord:
    """Describe a command that has just started as the leader of its process group.

    ``before`` is the boot clock in nanoseconds (:func:`boot_clock_ns`) just before the
    command started. With it, the start is placed between that time and now, which
    saves reading ``/proc`` (three system calls) for every command of a rolling deploy.
    Without it, the start time is read from ``/proc``.
    """
    name = os.path.basename(argv[0]) if argv else ""
    now = boot_clock_ns()
    if before is not None and now is not None and _have_proc():
        return ProcessRecord(pid, (_ticks(before), _ticks(now)), name)
    start = process_start_time(pid)
    return ProcessRecord(pid, None if start is None else (start, start), name)


@functools.cache
def _have_proc() -> bool:
    return _PROC.is_dir()


def _ticks(nanoseconds: int) -> int:
    """Convert boot clock nanoseconds to the clock ticks of /proc/PID/stat, which the
    kernel rounds down the same way."""
    return nanoseconds * _TICKS_PER_SECOND // 1_000_000_000


def lists_in(entries: Iterable[JournalEntry]) -> list[ProcessList]:
    """Return the command lists that a deployment's journal names."""
    lists = []
    for entry in entries:
        if entry.operation != PROCESS_OPERATION:
            continue
        where = ProcessList.from_details(dict(entry.details))
        if where is not None:
            lists.append(where)
    return lists


def process_start_time(pid: int) -> int | None:
    """Return the start time of process ``pid`` in clock ticks after boot, or None when
    it does not exist, is a zombie, or there is no ``/proc``."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def stop_orphans(lists: Sequence[ProcessList], grace: float = STOP_GRACE) -> OrphanReport:
    """Stop the listed process groups that still run on this host, then delete the lists.

    Lists of other hosts are only named in the report.
    """
    report = OrphanReport()
    host = current_host()
    for where in lists:
        if where.host != host:
            report.elsewhere.append(where.host)
            continue
        try:
            records = where.read()
        except FileNotFoundError:
            # A list is deleted only once its deployment's outcome is recorded, so
            # someone deleted it, by clearing the cache folder for example.
            logger.warning("the command list %s is missing; commands that the stopped run "
                           "left running here, if any, are not stopped", where.path)
            report.missing.append(where.path)
            continue
        except OSError as exc:
            logger.warning("cannot read the command list %s: %s", where.path, exc)
            report.unreadable.append(where.path)
            continue
        stop_groups(records, report, grace)
        _remove(where.path)
        report.cleared.append(where.path)
    return report


def stop_groups(records: Sequence[ProcessRecord], report: OrphanReport,
                grace: float = STOP_GRACE) -> None:
    """Stop the process groups of ``records`` that still run, adding them to ``report``.

    Each group is checked before it is signalled: its leader must be gone or have
    started within the listed range. Every group gets SIGTERM first, and those left
    after one shared ``grace`` period get SIGKILL, so that many commands that ignore
    SIGTERM cost one grace period, not one each.
    """
    running: list[ProcessRecord] = []
    seen = set(report.stopped)
    for record in records:
        if record.pid in seen:
            continue
        seen.add(record.pid)
        if _still_running(record):
            running.append(record)
    if not running:
        return

    logger.warning("%s of a stopped run still running; stopping them: %s",
                   plural(len(running), "command"), _groups(running))
    for record in running:
        _signal_group(record.pid, signal.SIGTERM)
    left = _wait_until_gone(running, grace)
    if left:
        logger.warning("%s still running %ss after SIGTERM; sending SIGKILL: %s",
                       plural(len(left), "command"), grace, _groups(left))
    for record in left:
        _signal_group(record.pid, signal.SIGKILL)
    for record in _wait_until_gone(left, grace):
        logger.error("%s (process group %d) did not exit after SIGKILL", record.command,
                     record.pid)
    report.stopped.extend(record.pid for record in running)


def _groups(records: Sequence[ProcessRecord]) -> str:
    """Name the commands and process groups of ``records``: ``deploy.sh (group 4120)``."""
    return ", ".join(f"{record.command} (group {record.pid})" for record in records)


def _still_running(record: ProcessRecord) -> bool:
    """Tell whether the recorded group still has live members that belong to it."""
    if record.pid <= 1:
        # Not a command's group: signals to 0 or 1 would reach every process.
        logger.warning("process group %d in the command list is not one that a command "
                       "leads; it is left alone", record.pid)
        return False
    if record.pid == os.getpgrp():
        logger.warning("process group %d in the command list is the group of this run, "
                       "not one that a command leads; it is left alone", record.pid)
        return False
    if record.started is None:
        logger.warning("cannot check whether %s (process group %d) still runs: no start "
                       "time was recorded, so it is left alone", record.command, record.pid)
        return False
    leader_start = process_start_time(record.pid)
    if leader_start is not None and not record.started_at(leader_start):
        logger.info("process %d is a new process that reuses the id of %s; left alone",
                    record.pid, record.command)
        return False
    # NOTE: with the leader gone, a group that another program created with the same
    # id after the command's processes had all exited passes this check too.
    return bool(_group_members(record))


def _wait_until_gone(records: Sequence[ProcessRecord], seconds: float) -> list[ProcessRecord]:
    """Wait up to ``seconds`` for the groups of ``records`` to empty; return those that
    have not."""
    # Real time on purpose: the processes run on the system clock, not a run's clock.
    end = time.monotonic() + seconds
    left = list(records)
    while left:
        left = [record for record in left if _group_members(record)]
        if not left or time.monotonic() >= end:
            break
        time.sleep(_POLL_INTERVAL)
    return left


def _group_members(record: ProcessRecord) -> list[int]:
    """Return the live (not zombie) processes of the record's group that started no
    earlier than its leader, so that members of a later group with the same id are not
    counted."""
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z" or int(fields[2]) != record.pid:
            continue
        if record.started is not None and int(fields[19]) < record.started[0]:
            continue
        members.append(int(entry.name))
    return members


def _stat_fields(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/PID/stat`` from field 3 (the state) on, or None."""
    # os calls rather than pathlib: a run reads this once for every command it starts.
    try:
        descriptor = os.open(f"{_PROC}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(descriptor, 4096)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    return data.decode("ascii", errors="replace").rpartition(")")[2].split()


def _signal_group(group: int, signum: signal.Signals) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        logger.warning("cannot send %s to process group %d: permission denied",
                       signum.name, group)
