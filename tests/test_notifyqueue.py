"""pipeline.notifyqueue with real worker threads and senders that tests control."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from pipeline.notification import Delivery, Notification
from pipeline.notifyqueue import NotifyQueue, Ticket

#: Seconds a test waits for a thread before it fails; generous, because waits end early.
WAIT = 10.0


def note(event: str, uses: str = "hook", *, required: bool = False) -> Notification:
    return Notification(event=event, uses=uses, options={}, pipeline="shop", message=event,
                        required=required)


class Senders:
    """A sender that records calls and blocks on the events that tests hold."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.reported: list[tuple[str, tuple[Delivery, ...]]] = []
        self.started: dict[str, threading.Event] = {}
        self.gates: dict[str, threading.Event] = {}
        self.finished: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def hold(self, event: str) -> threading.Event:
        """Make the send of ``event`` wait until the returned event is set."""
        self.started[event] = threading.Event()
        self.gates[event] = threading.Event()
        self.finished[event] = threading.Event()
        return self.gates[event]

    def send(self, notification: Notification) -> Sequence[Delivery]:
        started = self.started.get(notification.event)
        if started is not None:
            started.set()
            self.gates[notification.event].wait(WAIT)
        with self._lock:
            self.sent.append(notification.event)
        if notification.event in self.finished:
            self.finished[notification.event].set()
        ok = not notification.event.startswith("bad")
        return [Delivery(notification.uses, ok, "sent" if ok else "HTTP 500")]

    def listen(self, notification: Notification, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            self.reported.append((notification.event, tuple(deliveries)))

    def wait_started(self, event: str) -> None:
        assert self.started[event].wait(WAIT), f"{event} was never sent"


@pytest.fixture
def senders() -> Senders:
    return Senders()


def wait_all(tickets: Sequence[Ticket]) -> None:
    for ticket in tickets:
        assert ticket.wait(WAIT) is not None


def test_queue_delivers_and_reports(senders: Senders) -> None:
    queue = NotifyQueue(senders.send, senders.listen)
    tickets = [queue.submit(note("started")), queue.submit(note("bad_one"))]
    wait_all(tickets)
    result = queue.drain(WAIT)

    assert result.complete
    assert tickets[0].deliveries == (Delivery("hook", True, "sent"),)
    assert tickets[1].deliveries == (Delivery("hook", False, "HTTP 500"),)
    assert sorted(event for event, _ in senders.reported) == ["bad_one", "started"]


def test_queue_lane_keeps_order(senders: Senders) -> None:
    gate = senders.hold("first")
    queue = NotifyQueue(senders.send, senders.listen, workers=4)
    tickets = [queue.submit(note("first"), lane="a")]
    senders.wait_started("first")
    tickets += [queue.submit(note(name), lane="a") for name in ("second", "third")]
    gate.set()
    wait_all(tickets)

    assert senders.sent == ["first", "second", "third"]


def test_queue_lanes_run_in_parallel(senders: Senders) -> None:
    gate = senders.hold("hanging")
    queue = NotifyQueue(senders.send, senders.listen, workers=2)
    hanging = queue.submit(note("hanging"), lane="slow")
    senders.wait_started("hanging")
    fast = queue.submit(note("fast"), lane="quick")

    assert fast.wait(WAIT) == (Delivery("hook", True, "sent"),)
    assert not hanging.done
    gate.set()


def test_queue_default_lane_is_uses(senders: Senders) -> None:
    gate = senders.hold("first")
    queue = NotifyQueue(senders.send, senders.listen, workers=4)
    first = queue.submit(note("first", uses="slack"))
    senders.wait_started("first")
    other = queue.submit(note("other", uses="teams"))
    same = queue.submit(note("same", uses="slack"))

    assert other.wait(WAIT) is not None
    assert not same.done
    gate.set()
    wait_all([first, same])


def test_queue_full_drops_oldest_waiting(senders: Senders) -> None:
    gate = senders.hold("busy")
    queue = NotifyQueue(senders.send, senders.listen, maxsize=2, workers=1)
    busy = queue.submit(note("busy"))
    senders.wait_started("busy")
    oldest = queue.submit(note("oldest"))
    middle = queue.submit(note("middle"))
    newest = queue.submit(note("newest"))

    assert oldest.done
    assert oldest.deliveries == (
        Delivery("hook", False, "dropped: more than 2 notifications waiting"),)
    assert ("oldest", oldest.deliveries) in senders.reported
    gate.set()
    wait_all([busy, middle, newest])
    assert senders.sent == ["busy", "middle", "newest"]


def test_queue_full_keeps_required(senders: Senders) -> None:
    gate = senders.hold("busy")
    queue = NotifyQueue(senders.send, senders.listen, maxsize=2, workers=1)
    busy = queue.submit(note("busy"))
    senders.wait_started("busy")
    required = queue.submit(note("required", required=True))
    optional = queue.submit(note("optional"))
    newest = queue.submit(note("newest"))

    assert optional.deliveries == (
        Delivery("hook", False, "dropped: more than 2 notifications waiting"),)
    assert not required.done
    gate.set()
    wait_all([busy, required, newest])
    assert senders.sent == ["busy", "required", "newest"]


def test_queue_full_of_required_drops_new(senders: Senders) -> None:
    gate = senders.hold("busy")
    queue = NotifyQueue(senders.send, senders.listen, maxsize=1, workers=1)
    busy = queue.submit(note("busy"))
    senders.wait_started("busy")
    waiting = queue.submit(note("waiting", required=True))
    rejected = queue.submit(note("rejected", required=True))

    assert rejected.deliveries == (
        Delivery("hook", False, "dropped: more than 1 notifications waiting"),)
    gate.set()
    wait_all([busy, waiting])
    assert senders.sent == ["busy", "waiting"]


def test_queue_worker_count_bounded(senders: Senders) -> None:
    gates = [senders.hold(f"hang{index}") for index in range(3)]
    queue = NotifyQueue(senders.send, senders.listen, workers=2)
    tickets = [queue.submit(note(f"hang{index}"), lane=str(index)) for index in range(3)]
    senders.wait_started("hang0")
    senders.wait_started("hang1")

    assert not senders.started["hang2"].wait(0.2)
    for gate in gates:
        gate.set()
    wait_all(tickets)


def test_drain_timeout_abandons_hanging(senders: Senders) -> None:
    gate = senders.hold("hanging")
    queue = NotifyQueue(senders.send, senders.listen, workers=1)
    hanging = queue.submit(note("hanging"))
    senders.wait_started("hanging")
    waiting = queue.submit(note("waiting"))
    result = queue.drain(0.1)

    reason = "not delivered within 100ms, when the run stopped waiting"
    assert [n.event for n in result.undelivered] == ["hanging", "waiting"]
    assert not result.complete
    assert hanging.deliveries == (Delivery("hook", False, reason),)
    assert waiting.deliveries == (Delivery("hook", False, reason),)
    assert senders.reported == [("hanging", hanging.deliveries),
                                ("waiting", waiting.deliveries)]
    gate.set()


def test_drain_ignores_late_results(senders: Senders) -> None:
    gate = senders.hold("hanging")
    queue = NotifyQueue(senders.send, senders.listen, workers=1)
    hanging = queue.submit(note("hanging"))
    senders.wait_started("hanging")
    queue.drain(0.05)
    reported = list(senders.reported)
    gate.set()

    assert senders.finished["hanging"].wait(WAIT)
    # The worker reports right after the send returns; give it that moment.
    threading.Event().wait(0.05)
    assert senders.reported == reported
    assert hanging.deliveries[0].ok is False


def test_drain_waits_for_delivery(senders: Senders) -> None:
    gate = senders.hold("slow")
    queue = NotifyQueue(senders.send, senders.listen)
    ticket = queue.submit(note("slow"))
    senders.wait_started("slow")
    threading.Timer(0.05, gate.set).start()
    result = queue.drain(WAIT)

    assert result.complete
    assert ticket.deliveries == (Delivery("hook", True, "sent"),)


def test_submit_after_drain_not_sent(senders: Senders) -> None:
    queue = NotifyQueue(senders.send, senders.listen)
    queue.drain(1.0)
    ticket = queue.submit(note("late"))

    assert ticket.deliveries == (Delivery(
        "hook", False, "not sent: the run already stopped sending notifications"),)
    assert senders.sent == []
    assert senders.reported == []


def test_ticket_wait_stops_on_cancel(senders: Senders) -> None:
    gate = senders.hold("hanging")
    queue = NotifyQueue(senders.send, senders.listen)
    ticket = queue.submit(note("hanging"))
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()

    assert ticket.wait(WAIT, cancel) is None
    gate.set()


def test_ticket_wait_timeout(senders: Senders) -> None:
    gate = senders.hold("hanging")
    queue = NotifyQueue(senders.send, senders.listen)
    ticket = queue.submit(note("hanging"))

    assert ticket.wait(0.05) is None
    gate.set()


def test_listener_error_logged(senders: Senders, caplog: pytest.LogCaptureFixture) -> None:
    def broken(notification: Notification, deliveries: Sequence[Delivery]) -> None:
        raise RuntimeError("listener bug")

    queue = NotifyQueue(senders.send, broken)
    ticket = queue.submit(note("started"))
    ticket.wait(WAIT)
    queue.drain(WAIT)

    assert "listener for notification started via hook raised" in caplog.messages
    assert ticket.deliveries == (Delivery("hook", True, "sent"),)


def test_queue_invalid_size() -> None:
    with pytest.raises(ValueError) as raised:
        NotifyQueue(lambda n: [], lambda n, d: None, maxsize=0)

    assert str(raised.value) == "maxsize and workers must be at least 1, got 0 and 4"
