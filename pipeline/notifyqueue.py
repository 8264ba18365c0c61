"""A bounded background queue that sends notifications without blocking the run.

The runner puts each notification on the queue and goes on at once. A few worker threads
(:data:`DEFAULT_WORKERS`) take notifications off it and call the notifiers. Two rules
decide who goes next:

- notifications in the same lane are sent one at a time, in the order they were queued.
  The runner uses one lane per subscription and one per notify step, so a notifier that
  creates something on ``started`` (a GitHub deployment) has it before later events.
  Lanes are sent in parallel, so one hanging endpoint holds up only its own lane, as long
  as fewer lanes than workers hang;
- the queue contains at most ``maxsize`` notifications waiting to be sent. When it is full,
  the oldest waiting notification that is not ``required`` is dropped with a warning,
  because the newest events (failed, rolled back, the run's result) matter most. When
  every waiting notification is required, the new one is dropped instead, so the bound
  always holds.

At the end of the run :meth:`NotifyQueue.drain` waits a bounded time for the queue to
empty. Whatever is still waiting or being sent then is reported as not delivered, and
results that arrive later are ignored: worker threads are daemons, and a hanging request
ends at its own timeout or with the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.durations import format_duration
from pipeline.notification import Delivery, Notification

logger = logging.getLogger("shipline")

#: Notifications that may wait to be sent before the oldest is dropped.
DEFAULT_MAXSIZE = 100
#: Worker threads, so at most this many notifiers are sent to at once.
DEFAULT_WORKERS = 4

#: Sends one notification and returns what each notifier that handled it reported.
Sender = Callable[[Notification], Sequence[Delivery]]
#: Called with a notification and its deliveries once it is handled, dropped or abandoned.
Listener = Callable[[Notification, Sequence[Delivery]], None]


class Ticket:
    """A queued notification; :meth:`wait` blocks until it is delivered, dropped or abandoned."""

    def __init__(self, notification: Notification, lane: str) -> None:
        self.notification = notification
        self.lane = lane
        self.deliveries: tuple[Delivery, ...] = ()
        #: Set by :meth:`NotifyQueue.give_up` when no caller waits for this ticket any more.
        self.given_up = False
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None,
             cancel: threading.Event | None = None) -> tuple[Delivery, ...] | None:
        """Return the deliveries, or None when ``timeout`` seconds pass or ``cancel`` is set.

        ``cancel`` is checked every :data:`CANCEL_POLL` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if cancel is not None and cancel.is_set():
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            slice_seconds = CANCEL_POLL if remaining is None else min(remaining, CANCEL_POLL)
            self._done.wait(slice_seconds)
        return self.deliveries

    def finish(self, deliveries: Sequence[Delivery]) -> None:
        """Store the outcome; only the first call counts, so a late result cannot replace
        the failure that :meth:`NotifyQueue.drain` recorded."""
        if self._done.is_set():
            return
        self.deliveries = tuple(deliveries)
        self._done.set()


#: Seconds between two looks at the ``cancel`` event in :meth:`Ticket.wait`.
CANCEL_POLL = 0.05


@dataclass(frozen=True)
class DrainResult:
    """The state of the queue when :meth:`NotifyQueue.drain` returned."""

    #: Notifications still waiting or being sent when the time ran out.
    undelivered: tuple[Notification, ...]
    #: Seconds the drain waited.
    waited: float

    @property
    def complete(self) -> bool:
        return not self.undelivered


#: Seconds between checks of the stop event while draining.
_STOP_POLL = 0.1


class NotifyQueue:
    """Send notifications from bounded worker threads; see the module docstring.

    ``send`` runs in a worker thread and must not raise: it turns a notifier's error into
    a failed :class:`Delivery`. ``listener`` runs in the worker thread after each send,
    and in the calling thread for dropped and abandoned notifications. It is never called
    after :meth:`drain` has returned.
    """

    def __init__(self, send: Sender, listener: Listener, *, maxsize: int = DEFAULT_MAXSIZE,
                 workers: int = DEFAULT_WORKERS) -> None:
        if maxsize < 1 or workers < 1:
            raise ValueError(f"maxsize and workers must be at least 1, got {maxsize} and "
                             f"{workers}")
        self._send = send
        self._listener = listener
        self._maxsize = maxsize
        self._max_workers = workers
        self._waiting: deque[Ticket] = deque()
        #: The lanes being sent right now, and the ticket being sent in each.
        self._busy: dict[str, Ticket] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._changed = threading.Condition()

    def submit(self, notification: Notification, lane: str | None = None) -> Ticket:
        """Queue ``notification`` in ``lane`` (default: its ``uses``) and return at once.

        Drops one notification if the queue is full. After :meth:`drain` the notification
        is not sent: its ticket finishes at once with a failed delivery.
        """
        ticket = Ticket(notification, notification.uses if lane is None else lane)
        with self._changed:
            closed = self._closed
            dropped = None if closed else self._make_room(ticket)
            if not closed and dropped is not ticket:
                self._waiting.append(ticket)
                self._start_worker()
                self._changed.notify_all()

        if closed:
            # The listener's run is over, so only the log and the ticket learn of it.
            reason = "not sent: the run already stopped sending notifications"
            logger.warning("notification %s via %s %s", notification.event, notification.uses,
                           reason)
            ticket.finish((Delivery(notification.uses, False, reason),))
        elif dropped is not None:
            self._abandon(dropped, f"dropped: more than {self._maxsize} notifications waiting")
        return ticket

    def _make_room(self, ticket: Ticket) -> Ticket | None:
        """Return the ticket to drop so ``ticket`` fits, or None when there is room."""
        if len(self._waiting) < self._maxsize:
            return None
        for waiting in self._waiting:
            if not waiting.notification.required:
                self._waiting.remove(waiting)
                return waiting
        return ticket

    def give_up(self, ticket: Ticket, reason: str) -> None:
        """Stop waiting for ``ticket``: drop it if it has not started, and let
        :meth:`drain` ignore it if it is being sent, so it is not waited for twice."""
        with self._changed:
            ticket.given_up = True
            waiting = ticket in self._waiting
            if waiting:
                self._waiting.remove(ticket)
            self._changed.notify_all()
        if waiting:
            self._abandon(ticket, reason)

    def _pending_busy(self) -> list[Ticket]:
        """Return the tickets being sent that someone still waits for."""
        return [ticket for ticket in self._busy.values() if not ticket.given_up]

    def _abandon(self, ticket: Ticket, reason: str) -> None:
        """Finish ``ticket`` as failed; the listener logs it like any failed delivery."""
        notification = ticket.notification
        deliveries = (Delivery(notification.uses, False, reason),)
        self._report(notification, deliveries)
        ticket.finish(deliveries)

    def _start_worker(self) -> None:
        """Start one more worker while there are fewer than allowed and work waits."""
        idle = len(self._threads) - len(self._busy)
        if idle >= len(self._waiting) or len(self._threads) >= self._max_workers:
            return
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"shipline notify {len(self._threads) + 1}")
        self._threads.append(thread)
        thread.start()

    def _next(self) -> Ticket | None:
        """Wait for a ticket whose lane is free; return None once the queue is closed."""
        with self._changed:
            while True:
                if self._closed:
                    return None
                for ticket in self._waiting:
                    if ticket.lane not in self._busy:
                        self._waiting.remove(ticket)
                        self._busy[ticket.lane] = ticket
                        return ticket
                self._changed.wait()

    def _work(self) -> None:
        while True:
            ticket = self._next()
            if ticket is None:
                return
            deliveries = self._send(ticket.notification)
            with self._changed:
                del self._busy[ticket.lane]
                self._changed.notify_all()
                # Checked and reported under the lock, so no result reaches the listener
                # after drain() has returned.
                if not self._closed:
                    self._report(ticket.notification, deliveries)
            ticket.finish(deliveries)

    def _report(self, notification: Notification, deliveries: Sequence[Delivery]) -> None:
        try:
            self._listener(notification, deliveries)
        except Exception:
            logger.exception("listener for notification %s via %s raised", notification.event,
                             notification.uses)

    def drain(self, timeout: float, stop: threading.Event | None = None) -> DrainResult:
        """Wait up to ``timeout`` seconds for every queued notification to be handled, or
        until ``stop`` is set (SIGINT or SIGTERM during the wait).

        Then close the queue: what is still waiting or being sent is reported to the
        listener as a failed delivery and returned as undelivered.
        """
        started = time.monotonic()
        deadline = started + max(timeout, 0.0)
        with self._changed:
            while self._waiting or self._pending_busy():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    break
                # Short waits, so that a signal setting ``stop`` is noticed soon.
                self._changed.wait(min(remaining, _STOP_POLL))
            self._closed = True
            left = [*self._pending_busy(), *self._waiting]
            self._waiting.clear()
            self._changed.notify_all()

        reason = f"not delivered within {format_duration(timeout)}, when the run stopped waiting"
        for ticket in left:
            self._abandon(ticket, reason)
        return DrainResult(tuple(t.notification for t in left), time.monotonic() - started)
