"""The ``nginx`` router: weights and switches written to an upstream file nginx includes.

Every change goes through one transaction (:meth:`NginxRouter._install`):

1. write the new upstream file (atomically, by renaming a file written beside it);
2. run ``nginx -T``, which tests the configuration as ``-t`` does and also lists the
   files it read; if nginx rejects the configuration, put the previous file back,
   keep the rejected text in ``<file>.rejected`` and fail with nginx's message, and
   if the file is not among those nginx read, put it back and fail too;
3. run the reload command; if it fails, put the previous file back and fail;
4. with a ``pid`` file, wait until the master runs workers started after the reload
   and every older worker is gone or shutting down, because ``nginx -s reload`` only
   sends a signal and returns before nginx has applied anything. If that does not
   happen within the timeout (nginx kept the old configuration, for example because
   it could not bind a port), put the previous file back and fail.

When there was no file before the change, putting the previous file back means
deleting the new one. So after a failure the file contains the last configuration
that nginx accepted, or is absent, unless restoring it fails; the error says which.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.context import Interrupted
from pipeline.durations import format_duration
from pipeline.errors import ShiplineError
from pipeline.target import AddressedTarget, Capability, Router, Target
from shipline_nginx.render import RoutingState, Server, read_state, render
from shipline_nginx.settings import NginxSettings, is_address

logger = logging.getLogger("shipline")

#: Seconds between two looks at the nginx master's worker processes after a reload.
_POLL_INTERVAL = 0.05

#: Characters of nginx's output quoted in an error message.
_MAX_QUOTE = 600

#: A line of nginx's log: ``nginx: [emerg] text`` or ``2024/01/02 03:04:05 [emerg] 7#7: text``.
_LEVEL_LINE = re.compile(
    r"\[(?P<level>emerg|alert|crit|error)\] (?:\d+#\d+: )?(?P<message>.*)$"
)


class NginxError(ShiplineError):
    """nginx rejected the configuration, could not be run, or did not reload."""


class NginxRouter:
    """A :class:`~pipeline.target.Router` that routes through nginx. Thread-safe.

    The slots and their instances come from ``target``. The active slot and the canary
    weight are kept in the upstream file itself, so a later run continues from them,
    unless the target is a router that reports its own active slot (see :meth:`create`).
    """

    def __init__(self, settings: NginxSettings, target: Target,
                 cancel: threading.Event | None = None) -> None:
        self.settings = settings
        self._target = target
        self._cancel = cancel or threading.Event()
        self._state = RoutingState()
        self._lock = threading.Lock()

    @classmethod
    def create(cls, settings: NginxSettings, target: Target,
               cancel: threading.Event | None = None) -> NginxRouter:
        """Find the routing state to start from and bring the upstream file up to date.

        A target that is a router itself and reports an active slot decides: all
        requests go to that slot, whatever the file recorded. The ``local`` target
        is such a target, and it starts every run anew with its stable version on
        blue, so a slot or share that a previous run left in the file names
        processes that no longer run. Otherwise the state line of the file decides,
        and without one no slot is active. When a slot is active, the file is
        rewritten with the instances' current addresses, and nginx reloaded, if that
        changes its text. Raises NginxError when that fails.
        """
        router = cls(settings, target, cancel)
        state = router._initial_state()
        router._state = state
        if state.active is not None:
            router._apply(state)
        logger.info("%s: active slot %s, %d%% to slot %s", router._label(), state.active,
                    state.weight, state.canary)
        return router

    def _initial_state(self) -> RoutingState:
        recorded = self._read_state()
        reported = self._target.active_slot() if isinstance(self._target, Router) else None
        if reported is None:
            return recorded or RoutingState()

        state = RoutingState(reported)
        if recorded is not None and recorded != state:
            logger.info("%s: the target's active slot %s replaces the state recorded in "
                        "'%s' (%s)", self._label(), reported, self.settings.config,
                        recorded.to_json())
        return state

    # -- Router ----------------------------------------------------------------------------

    def capabilities(self) -> frozenset[Capability]:
        return frozenset({Capability.WEIGHTS, Capability.SLOTS})

    def active_slot(self) -> str | None:
        with self._lock:
            return self._state.active

    def set_weight(self, slot: str, weight: int) -> None:
        """Send ``weight`` percent of requests to ``slot``; 0 sends all to the active slot.

        Raises NginxError for an unknown slot, a weight outside 0-100, no active slot
        yet, ``slot`` being the active slot, or a failed check or reload.
        """
        self._check_slot(slot)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise NginxError(f"{self._label()}: invalid weight {weight!r}: use a whole "
                             "number from 0 to 100")
        active = self.active_slot()
        if active is None:
            raise NginxError(f"{self._label()}: cannot send a share to slot '{slot}': no "
                             "slot is active yet")
        if slot == active:
            raise NginxError(f"{self._label()}: slot '{slot}' is the active slot; switch "
                             "to move all traffic")

        self._apply(RoutingState(active, slot if weight else None, weight))
        logger.info("%s: %d%% of requests to slot %s", self._label(), weight, slot)

    def switch(self, slot: str) -> None:
        """Send all requests to ``slot`` and make it active; raises NginxError on failure."""
        self._check_slot(slot)
        self._apply(RoutingState(slot))
        logger.info("%s: all requests to slot %s", self._label(), slot)

    def endpoint(self) -> str | None:
        return self.settings.endpoint

    def close(self) -> None:
        """Release nothing: after the run, nginx keeps routing as the file specifies."""

    # -- the transaction -------------------------------------------------------------------

    def _apply(self, state: RoutingState) -> None:
        """Make nginx route as ``state`` specifies, and remember ``state`` once it does."""
        with self._lock:
            servers = self._servers(state)
            try:
                text = render(self.settings.upstream, state, servers)
            except ValueError as exc:
                raise NginxError(f"{self._label()}: {exc}") from exc

            previous = self._read_file()
            if text != previous:
                self._install(text, previous)
            self._state = state

    def _install(self, text: str, previous: str | None) -> None:
        """Write ``text``, check it and reload; on any failure put ``previous`` back.

        ``previous`` is ``None`` when there was no file, which is then deleted again.
        The NginxError raised ends with what happened to the file.
        """
        self._write(text)
        reload_sent = False
        try:
            self._check(text)
            workers = self._workers_before_reload()
            self._reload()
            reload_sent = True
            if workers is not None:
                self._wait_for_new_workers(*workers)
        except NginxError as exc:
            outcome = self._restore(previous)
            if reload_sent:
                # nginx may apply the new file late: make it load the restored one.
                self._run(self.settings.reload_argv(), "the reload command")
            raise NginxError(f"{exc}; {outcome}") from exc
        except BaseException:
            self._restore(previous)
            raise
        logger.info("%s: nginx reloaded with the new %s", self._label(), self.settings.config)

    def _check(self, text: str) -> None:
        config = self.settings.config
        check = self._run(self.settings.nginx_argv("-T"), "nginx -T")
        if check.returncode != 0:
            raise NginxError(
                f"{self._label()}: nginx -T rejected the new configuration: "
                f"{quote_nginx(check.stderr)}; {self._keep_rejected(text)}"
            )
        if not includes_file(check.stdout, config):
            main = self.settings.conf or "nginx's default configuration file"
            raise NginxError(
                f"{self._label()}: {main} does not include '{config}', so nginx would not "
                f"route by it: add 'include {config};' to its http block, or set the "
                "router's 'conf' option to the nginx.conf that includes it"
            )

    def _reload(self) -> None:
        reload = self._run(self.settings.reload_argv(), "the reload command")
        if reload.returncode != 0:
            output = quote_nginx(reload.stderr or reload.stdout)
            raise NginxError(
                f"{self._label()}: the reload command {' '.join(self.settings.reload_argv())} "
                f"failed with exit code {reload.returncode}: {output}"
            )

    def _wait_for_new_workers(self, master: int, before: set[int]) -> None:
        deadline = time.monotonic() + self.settings.timeout
        while True:
            if reloaded(master, before):
                return
            if time.monotonic() >= deadline:
                break
            if self._cancel.wait(_POLL_INTERVAL):
                raise Interrupted(f"{self._label()}: interrupted while waiting for nginx "
                                  "to reload")

        raise NginxError(
            f"{self._label()}: nginx (master pid {master}) did not start workers with the "
            f"new configuration within {format_duration(self.settings.timeout)} of the "
            "reload; its error log says why"
        )

    def _workers_before_reload(self) -> tuple[int, set[int]] | None:
        """Return the master's pid and its current workers, or ``None`` without ``pid``."""
        if self.settings.pid is None:
            return None
        try:
            master = int(self.settings.pid.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            raise NginxError(f"{self._label()}: cannot read the nginx pid file "
                             f"'{self.settings.pid}': {exc}; is nginx running?") from exc
        return master, set(worker_processes(master))

    # -- files and commands ----------------------------------------------------------------

    def _read_state(self) -> RoutingState | None:
        text = self._read_file()
        if text is None:
            return None
        try:
            return read_state(text)
        except ValueError as exc:
            raise NginxError(f"{self._label()}: '{self.settings.config}': {exc}; delete the "
                             "line and set the active slot by a switch") from exc

    def _read_file(self) -> str | None:
        try:
            return self.settings.config.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise NginxError(f"{self._label()}: cannot read '{self.settings.config}': "
                             f"{exc}") from exc

    def _write(self, text: str) -> None:
        config = self.settings.config
        temporary = config.with_name(f".{config.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, config)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise NginxError(f"{self._label()}: cannot write '{config}': "
                             f"{exc.strerror or exc}") from exc

    def _restore(self, previous: str | None) -> str:
        """Put back the last accepted text, or delete the file if there was none.

        Returns what happened to the file, as the end of an error message. A failure
        is logged and described there, because the caller raises anyway.
        """
        config = self.settings.config
        try:
            if previous is None:
                config.unlink(missing_ok=True)
                return f"'{config}' was deleted, because it did not exist before the change"
            self._write(previous)
            return f"'{config}' was restored to the previous version"
        except (OSError, NginxError):
            logger.exception("%s: could not restore '%s'", self._label(), config)
            undo = "deleted" if previous is None else "restored to the previous version"
            return (f"'{config}' could not be {undo} and still contains the new "
                    "configuration: fix it by hand before nginx reloads")

    def _keep_rejected(self, text: str) -> str:
        """Save the rejected ``text`` beside the file; return where, or why not."""
        rejected = Path(f"{self.settings.config}.rejected")
        try:
            rejected.write_text(text, encoding="utf-8")
        except OSError as exc:
            logger.warning("%s: cannot save '%s': %s", self._label(), rejected, exc)
            return f"the rejected text could not be saved in '{rejected}': {exc.strerror or exc}"
        return f"the rejected text was saved in '{rejected}'"

    def _run(self, argv: Sequence[str], description: str) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` without a shell; raise NginxError if it cannot start or times out."""
        try:
            return subprocess.run(
                list(argv), capture_output=True, text=True, errors="replace",
                stdin=subprocess.DEVNULL, timeout=self.settings.timeout,
            )
        except FileNotFoundError as exc:
            raise NginxError(
                f"{self._label()}: {description} cannot run: '{argv[0]}' not found; install nginx "
                "or set the router's 'nginx' option to its path"
            ) from exc
        except PermissionError as exc:
            raise NginxError(f"{self._label()}: {description} cannot run: permission denied: "
                             f"'{argv[0]}'") from exc
        except subprocess.TimeoutExpired as exc:
            raise NginxError(f"{self._label()}: {description} timed out after "
                             f"{format_duration(self.settings.timeout)}") from exc

    # -- instances -------------------------------------------------------------------------

    def _servers(self, state: RoutingState) -> list[Server]:
        servers = []
        for slot in (state.active, state.canary):
            if slot is None:
                continue
            for instance in self._target.instances(slot):
                address = self._address(instance)
                if address is None:
                    logger.warning("%s: instance %s of slot %s has no address and gets no "
                                   "requests", self._label(), instance, slot)
                    continue
                servers.append(Server(instance, slot, address))
        return servers

    def _address(self, instance: str) -> str | None:
        mapped = self.settings.servers.get(instance)
        if mapped is not None:
            return mapped
        if isinstance(self._target, AddressedTarget):
            # NOTE: the local target gives a restarted instance a new port. Only weight
            # changes and switches rewrite the file, so a rolling deploy leaves it stale.
            return self._target.address(instance)
        return instance if is_address(instance) else None

    def _check_slot(self, slot: str) -> None:
        slots = tuple(self._target.slots())
        if slot not in slots:
            raise NginxError(f"{self._label()}: unknown slot '{slot}': use one of "
                             f"{', '.join(slots) or '(the target has no slots)'}")

    def _label(self) -> str:
        if self.settings.environment:
            return f"environment '{self.settings.environment}': nginx router"
        return "nginx router"


def quote_nginx(output: str) -> str:
    """Return the lines of nginx's output that report the problem, joined and bounded.

    Those are the lines with a level in brackets, as ``[emerg] message``: without the
    ``nginx:`` prefix, or the time and ``pid#tid:`` that nginx adds once the
    configuration's ``error_log`` applies. Without such lines, the last non-blank line.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = [f"[{match['level']}] {match['message']}"
             for match in map(_LEVEL_LINE.search, lines) if match is not None]
    if found:
        text = "; ".join(found)
    elif lines:
        text = lines[-1]
    else:
        text = "no output"
    return text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE] + "..."


def includes_file(dump: str, path: Path) -> bool:
    """Tell whether ``path`` is one of the files listed in the output of ``nginx -T``.

    nginx prints ``# configuration file PATH:`` before the text of each file it read.
    Files are compared by identity, so a symbolic link or a relative path still matches.
    """
    for line in dump.splitlines():
        if not (line.startswith("# configuration file ") and line.endswith(":")):
            continue
        listed = line[len("# configuration file "):-1]
        with contextlib.suppress(OSError):
            if os.path.samefile(listed, path):
                return True
    return False


def worker_processes(master: int) -> dict[int, str]:
    """Return the worker processes of nginx master ``master``: pid to command line.

    Reads ``/proc``, so it finds nothing on systems without it. A process that ends
    while it is read is left out.
    """
    workers = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text(encoding="ascii", errors="replace")
            # The parent pid is the second field after the command name in brackets,
            # which may itself contain spaces and brackets.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent != master:
                continue
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        title = cmdline.decode(errors="replace").strip()
        if "worker process" in title:
            workers[int(entry.name)] = title
    return workers


def reloaded(master: int, before: set[int]) -> bool:
    """Tell whether nginx applied a reload: a worker that was not in ``before`` runs, and
    every worker of ``before`` has ended or is shutting down (it no longer accepts)."""
    workers = worker_processes(master)
    started = set(workers) - before
    serving_old = [pid for pid in before if pid in workers
                   and "shutting down" not in workers[pid]]
    return bool(started) and not serving_old
