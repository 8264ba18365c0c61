"""Taking an environment's lock: who owns it, waiting for it, and keeping its lease alive.

A lock is a lease: it lasts ``lease`` seconds unless a heartbeat renews it, so the
lock of a run that was killed or cancelled frees itself. The lease is measured with
the clock of the run that writes it, so runners that share a PostgreSQL store need
clocks that agree to within a small part of the lease (NTP does this).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Mapping

from pipeline.cienv import CiJob
from pipeline.clock import Clock
from pipeline.durations import format_duration, parse_duration
from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode
from pipeline.state.errors import LockHeld, LockLost, StateError
from pipeline.state.records import Lock
from pipeline.state.store import StateStore

logger = logging.getLogger("shipline")

#: Seconds a lock lasts without a heartbeat. A killed run blocks its environment this long.
DEFAULT_LEASE = 60.0

#: First and largest pause, in seconds, between two attempts while waiting for a lock.
FIRST_RETRY = 0.5
MAX_RETRY = 10.0


class LockWaitCancelled(ShiplineError):
    """SIGINT or SIGTERM arrived while waiting for a lock; nothing was changed."""

    exit_code = ExitCode.INTERRUPTED


def default_owner(job: CiJob, hostname: str | None = None, pid: int | None = None) -> str:
    """Return the owner text of a lock: the CI job URL, else ``HOST/PID``.

    The text is shown to runs that find the lock held, so it must lead a person to the
    run that holds it.
    """
    if job.job_url:
        return job.job_url
    host = hostname if hostname is not None else socket.gethostname()
    return f"{host}/{pid if pid is not None else os.getpid()}"


def wait_for_lock(
    store: StateStore,
    environment: str,
    owner: str,
    *,
    lease: float,
    wait: float,
    clock: Clock,
    cancel: threading.Event | None = None,
) -> Lock:
    """Acquire the lock of ``environment``, trying again for up to ``wait`` seconds.

    Attempts are spaced by a pause that starts at FIRST_RETRY seconds and doubles up to
    MAX_RETRY, with up to 10% random jitter so waiting runs do not retry in step.
    ``wait`` 0 makes one attempt. The first failed attempt of a wait logs one warning,
    so that a job log shows why the run is idle. Raises LockHeld, naming the
    holder at the last attempt, when the time is up, and LockWaitCancelled when
    ``cancel`` is set.
    """
    deadline = clock.monotonic() + max(wait, 0.0)
    pause = FIRST_RETRY
    attempt = 1
    while True:
        try:
            return store.acquire_lock(environment, owner, lease)
        except LockHeld as held:
            remaining = deadline - clock.monotonic()
            if remaining <= 0 and wait <= 0:
                raise
            if remaining <= 0:
                raise LockHeld(held.lock, waited=format_duration(wait)) from None
            if attempt == 1:
                logger.warning("environment %s is locked by %s: waiting up to %s for the "
                               "lock (--lock-wait)", environment, held.lock.owner,
                               format_duration(wait))
            delay = min(pause * (1 + random.uniform(0, 0.1)), remaining)  # noqa: S311
            logger.info("lock of %s is held by %s: attempt %d failed, retrying in %.1f s",
                        environment, held.lock.owner, attempt, delay)

        if not clock.sleep(delay, cancel):
            raise LockWaitCancelled(f"cancelled while waiting for the lock of '{environment}'")

        pause = min(pause * 2, MAX_RETRY)
        attempt += 1


class Heartbeat:
    """A daemon thread that renews a lock every ``interval`` seconds until stopped.

    The thread opens its own store with ``open_store``, because a store object must
    not be shared between threads. A renewal that fails with a StateError (a database
    briefly unreachable) is logged and tried again at the next interval. When the lock
    is lost (LockLost), the thread sets :attr:`lost`, calls ``on_lost`` with the
    error, and ends: the run must stop changing the environment.
    """

    def __init__(
        self,
        open_store: Callable[[], StateStore],
        lock: Lock,
        *,
        lease: float,
        clock: Clock,
        interval: float | None = None,
        on_lost: Callable[[LockLost], None] | None = None,
    ) -> None:
        self._open_store = open_store
        self._lock = lock
        self._lease = lease
        self._clock = clock
        self._interval = interval if interval is not None else lease / 3
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="shipline-heartbeat",
                                        daemon=True)
        #: Set when the lock was taken over or released by someone else.
        self.lost = threading.Event()

    @property
    def lock(self) -> Lock:
        """The lock as of its last renewal, to release when the run ends."""
        with self._guard:
            return self._lock

    def start(self) -> None:
        logger.info("heartbeat for the lock of %s started, every %.1f s",
                    self._lock.environment, self._interval)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and wait for the thread to end (at most one renewal)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        logger.info("heartbeat for the lock of %s stopped", self._lock.environment)

    def _run(self) -> None:
        try:
            store = self._open_store()
        except StateError as error:
            logger.error("heartbeat cannot open the state store: %s", error)
            return

        with store:
            while self._clock.sleep(self._interval, self._stop):
                if not self._renew(store):
                    return

    def _renew(self, store: StateStore) -> bool:
        try:
            renewed = store.renew_lock(self.lock, self._lease)
        except LockLost as error:
            logger.error("heartbeat: %s", error)
            self.lost.set()
            if self._on_lost is not None:
                self._on_lost(error)
            return False
        except StateError as error:
            logger.warning("heartbeat could not renew the lock of %s, retrying in %.1f s: %s",
                           self._lock.environment, self._interval, error)
            return True

        with self._guard:
            self._lock = renewed
        return True


def lease_of(settings: Mapping[str, object]) -> float:
    """Return the ``state.lease`` setting in seconds, or :data:`DEFAULT_LEASE`."""
    value = settings.get("lease")
    if value is None:
        return DEFAULT_LEASE
    try:
        seconds = parse_duration(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise StateError(f"state.lease: {exc}") from exc
    if seconds < 1:
        raise StateError(f"state.lease: {value!r} is too short: use at least 1s")
    return seconds
