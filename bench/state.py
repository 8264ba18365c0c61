"""Measure the state store: a lock round trip and a history query, on both backends.

Goal: a median under 10 ms for each, with 100,000 deployments in the store. For each
backend the script fills a new store with ``--deployments`` deployments spread over
four environments (inserted in bulk, which is not timed), then times:

``lock``
    ``acquire_lock`` followed by ``release_lock`` of one environment: two write
    transactions, each committed to disk.
``history``
    ``history("production", limit=20)``, the query behind ``shipline history``.
``history-all``
    ``history(None, limit=20)``, across every environment.
``2 fsyncs``
    writing 4 KiB and calling fsync twice, in the temporary directory: the disk's
    floor under a lock round trip, since each of its two commits waits for the disk
    (reported, with no goal, to tell a slow disk from slow code).
``open``
    opening the store, which for SQLite includes ``PRAGMA quick_check`` of the file
    (reported, with no goal).

SQLite runs in a temporary directory. PostgreSQL 15 is started from the Debian package
on loopback with its default, durable settings (fsync on), as tests/helpers/postgres.py
does for the tests, unless ``--postgresql URL`` names a server to use instead. Run from
the repository root:

    .venv/bin/python bench/state.py [--deployments 100000] [--runs 200] [--backend sqlite]

The exit status is 1 when a median misses the goal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.postgres import running_postgres
from pipeline.clock import SystemClock
from pipeline.state.postgresql import PostgresStore
from pipeline.state.sqlite import SqliteStore
from pipeline.state.sqlstore import SqlStore

#: Seconds that the median of each timed operation may take.
GOAL = 0.010

ENVIRONMENTS = ("production", "staging", "qa", "canary")

INSERT = (
    "INSERT INTO deployments (id, pipeline, environment, version, previous_version, "
    "strategy, actor, job_url, commit_sha, started, finished, outcome) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def rows(count: int, encode: Callable[[datetime], object]) -> Iterator[tuple[object, ...]]:
    """Yield ``count`` finished deployments, one minute apart, ending an hour ago."""
    start = datetime.now(timezone.utc) - timedelta(minutes=count + 60)
    for index in range(count):
        started = start + timedelta(minutes=index)
        yield (uuid.uuid4().hex, "shop", ENVIRONMENTS[index % len(ENVIRONMENTS)],
               f"1.{index}", f"1.{index - 1}", "rolling", "octocat",
               f"https://ci.example/shop/-/jobs/{index}", f"{index:040x}",
               encode(started), encode(started + timedelta(seconds=90)), "succeeded")


def fill_sqlite(store: SqliteStore, count: int) -> None:
    connection = store._connection
    with connection:
        connection.execute("BEGIN")
        connection.executemany(INSERT, rows(count, store._encode_time))


def fill_postgresql(store: PostgresStore, count: int) -> None:
    connection = store._connection
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(INSERT.replace("?", "%s"), rows(count, store._encode_time))
    connection.execute("ANALYZE deployments")


def time_calls(call: Callable[[], object], runs: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def two_fsyncs(path: Path) -> None:
    """Write and fsync 4 KiB twice: the disk's share of a lock round trip, which
    commits twice."""
    with path.open("wb") as file:
        for _ in range(2):
            file.write(b"x" * 4096)
            file.flush()
            os.fsync(file.fileno())


def lock_round_trip(store: SqlStore) -> None:
    lock = store.acquire_lock("production", "bench/1", lease=60)
    store.release_lock(lock)


def report(backend: str, name: str, samples: list[float], goal: float | None = GOAL) -> bool:
    """Print the spread of ``samples`` (seconds) and return whether the median meets
    ``goal``."""
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p90 = ordered[int(len(ordered) * 0.9)]
    line = (f"{backend:>10} {name:<12} median {median * 1000:6.2f} ms  "
            f"p90 {p90 * 1000:6.2f} ms  min {ordered[0] * 1000:6.2f} ms  "
            f"max {ordered[-1] * 1000:7.2f} ms  ({len(samples)} runs")
    if goal is None:
        print(f"{line}; no goal)")
        return True
    verdict = "met" if median < goal else "NOT met"
    print(f"{line}; goal under {goal * 1000:.0f} ms: {verdict})")
    return median < goal


def measure(backend: str, open_store: Callable[[], SqlStore], count: int, runs: int) -> bool:
    with open_store() as store:
        started = time.perf_counter()
        if isinstance(store, SqliteStore):
            fill_sqlite(store, count)
        elif isinstance(store, PostgresStore):
            fill_postgresql(store, count)
        print(f"{backend:>10} filled with {count} deployments in "
              f"{time.perf_counter() - started:.1f} s (not timed)")
        assert len(store.history("production", limit=20)) == min(20, count // 4)

        results = [
            report(backend, "lock", time_calls(lambda: lock_round_trip(store), runs)),
            report(backend, "history", time_calls(lambda: store.history("production"), runs)),
            report(backend, "history-all", time_calls(lambda: store.history(None), runs)),
        ]

    open_samples = time_calls(lambda: open_store().close(), max(runs // 10, 5), warmup=1)
    report(backend, "open", open_samples, goal=None)
    return all(results)


def measure_disk(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fsync"
        report("disk", "2 fsyncs", time_calls(lambda: two_fsyncs(path), runs), goal=None)


@contextlib.contextmanager
def postgresql_url(given: str | None) -> Iterator[str]:
    if given is not None:
        yield given
        return
    with running_postgres(settings=()) as server:
        yield server.new_schema()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=100_000,
                        help="deployments in the store (default 100000)")
    parser.add_argument("--runs", type=int, default=200,
                        help="timed runs per operation (default 200)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append",
                        help="backend to measure; repeat for both (default both)")
    parser.add_argument("--postgresql", metavar="URL",
                        help="an empty PostgreSQL database to use instead of starting one")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]

    print(f"deployments: {args.deployments}, runs: {args.runs}, "
          f"python {sys.version.split()[0]}")
    measure_disk(args.runs)
    met = True
    clock = SystemClock()
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "state.db"
            met &= measure("sqlite", lambda: SqliteStore(path, clock), args.deployments,
                           args.runs)
    if "postgresql" in backends:
        with postgresql_url(args.postgresql) as url:
            met &= measure("postgresql", lambda: PostgresStore(url, clock), args.deployments,
                           args.runs)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
