"""Work on many instances or checks at once, in threads, with results in the order given."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from pipeline.errors import ShiplineError
from pipeline.target import InstanceResult

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger("shipline")

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: Maximum number of instances that a slot deploy, a rollback or a removal changes at once.
MAX_PARALLEL = 64


def run_parallel(
    items: Sequence[ItemT],
    work: Callable[[ItemT], ResultT],
    *,
    workers: int,
    pool: ThreadPoolExecutor | None = None,
) -> list[ResultT]:
    """Call ``work`` on every item, at most ``workers`` at a time, and return the results
    in the order of ``items``.

    Items start in their order. ``pool`` lends its threads, so that a deploy of many
    batches does not start new threads for each batch, and must have at least
    ``workers`` of them. Without it a pool is created for the call. If ``work`` raises,
    items not started yet are dropped, and the first exception is raised once the
    calls already running have returned.
    """
    from concurrent.futures import ThreadPoolExecutor  # Imported here to keep start-up fast.

    if not items:
        return []
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        return [work(item) for item in items]
    if pool is not None:
        return _run_lanes(pool, items, work, workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shipline-rollout") as own:
        return _run_lanes(own, items, work, workers)


def _run_lanes(
    pool: ThreadPoolExecutor,
    items: Sequence[ItemT],
    work: Callable[[ItemT], ResultT],
    workers: int,
) -> list[ResultT]:
    """Run ``workers`` lanes in ``pool`` that each take the next item until none is left."""
    from concurrent.futures import wait

    results: list[ResultT | None] = [None] * len(items)
    pending = iter(enumerate(items))
    lock = threading.Lock()
    failed = threading.Event()

    def lane() -> None:
        while not failed.is_set():
            with lock:
                entry = next(pending, None)
            if entry is None:
                return
            index, item = entry
            try:
                results[index] = work(item)
            except BaseException:
                failed.set()
                raise

    lanes = [pool.submit(lane) for _ in range(workers)]
    wait(lanes)
    for future in lanes:
        future.result()
    return cast("list[ResultT]", results)


def call_target(
    operation: str, instance: str, call: Callable[[], InstanceResult]
) -> InstanceResult:
    """Call one target primitive; an expected error (ShiplineError) becomes a failed result.

    Other exceptions are bugs in the target plugin and propagate.
    """
    try:
        return call()
    except ShiplineError as exc:
        logger.warning("%s on %s failed: %s", operation, instance, exc)
        return InstanceResult(instance, False, str(exc))


def started_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """Return a thread pool of ``workers`` threads, all of them already started.

    ThreadPoolExecutor starts a thread when work arrives and waits until the thread
    runs. In the first batch of a rolling deploy those waits queue behind the threads
    that are starting commands, which made the first batch tens of milliseconds longer
    than the others. Started here, before any command, the threads cost a few.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    # Each call blocks its thread until all have arrived, so no thread is idle when the
    # next one is submitted and the pool starts a new thread for each.
    arrived = threading.Barrier(workers + 1)
    try:
        for _ in range(workers):
            pool.submit(arrived.wait)
    except BaseException:
        # Threads that started stop waiting, and the pool goes: the system refused a
        # thread (RuntimeError: can't start new thread) or the run was interrupted.
        arrived.abort()
        pool.shutdown(wait=False)
        raise
    arrived.wait()
    return pool

