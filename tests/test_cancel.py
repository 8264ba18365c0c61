"""The run's cancel event: a threading.Event whose pipe a selector can wait for."""

from __future__ import annotations

import select
import threading

from pipeline.cancel import CancelEvent


def _readable(event: CancelEvent) -> bool:
    ready, _, _ = select.select([event.fileno()], [], [], 0)
    return bool(ready)


def test_cancel_event_pipe_follows_the_event() -> None:
    event = CancelEvent()
    assert not _readable(event)

    event.set()
    event.set()
    assert event.is_set()
    assert _readable(event)

    event.clear()
    assert not event.is_set()
    assert not _readable(event)


def test_cancel_event_set_before_first_fileno() -> None:
    event = CancelEvent()
    event.set()

    assert _readable(event)


def test_cancel_event_wakes_a_waiting_select() -> None:
    event = CancelEvent()
    descriptor = event.fileno()
    timer = threading.Timer(0.05, event.set)
    timer.start()

    ready, _, _ = select.select([descriptor], [], [], 10)

    timer.join()
    assert ready == [descriptor]


def test_cancel_event_is_still_an_event() -> None:
    event = CancelEvent()
    threading.Timer(0.05, event.set).start()

    assert event.wait(10)
