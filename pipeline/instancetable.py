"""The record of every instance a deploy looked at, and the plain-text tables built from it.

The record becomes the details table, the captured output and the ``data`` of the step
report, and rollbacks read from it which instances changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Bytes of captured command output kept in one step report (the tail of the whole).
MAX_REPORT_OUTPUT = 256 * 1024

#: Text shown for a version that could not be read.
UNKNOWN = "?"

#: Results of an instance that count as failures of the deploy.
FAILED_RESULTS = frozenset({"failed", "unhealthy", "check failed"})


@dataclass
class InstanceState:
    """The record of one instance in a deploy: versions before and after, and the result.

    ``before`` is the version read before the change (``None`` when unknown), and
    ``after`` the version it runs now according to the deploy. ``touched`` is set as soon
    as a change starts, so that a rollback restores the instance even if the change failed.
    """

    instance: str
    slot: str | None = None
    before: str | None = None
    after: str | None = None
    result: str = "pending"
    message: str = ""
    touched: bool = False


class InstanceTable:
    """A thread-safe record of every instance a deploy looked at, in the order first seen.

    It provides the details table, the captured output and the ``instances`` data of
    the step report. Rollbacks read from it which instances changed.
    """

    def __init__(self) -> None:
        self._rows: dict[str, InstanceState] = {}
        self._outputs: list[str] = []
        self._lock = threading.Lock()

    def update(self, instance: str, **fields: Any) -> None:
        """Record ``instance`` if it is new, then set ``fields`` on its state."""
        self.update_all((instance,), **fields)

    def update_all(self, instances: Iterable[str], **fields: Any) -> None:
        """Set ``fields`` on each of ``instances``, recording the new ones, under one lock."""
        self.update_many((instance, fields) for instance in instances)

    def update_many(self, changes: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Set the fields of each (instance, fields) pair, recording the new instances in
        the order given, under one lock."""
        with self._lock:
            for instance, fields in changes:
                state = self._rows.get(instance)
                if state is None:
                    state = self._rows[instance] = InstanceState(instance)
                for name, value in fields.items():
                    setattr(state, name, value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def get(self, instance: str) -> InstanceState:
        """Return a copy of the state of ``instance``; raise KeyError if it is unknown."""
        with self._lock:
            return _copied(self._rows[instance])

    def get_all(self, instances: Iterable[str]) -> list[InstanceState]:
        """Return copies of the states of ``instances``, in their order, under one lock;
        raise KeyError if one is unknown."""
        with self._lock:
            return [_copied(self._rows[instance]) for instance in instances]

    def rows(self) -> list[InstanceState]:
        """Return copies of every state, in the order the instances were first seen."""
        with self._lock:
            return [_copied(state) for state in self._rows.values()]

    def failures(self) -> list[InstanceState]:
        """Return copies of the states whose result is one of :data:`FAILED_RESULTS`."""
        with self._lock:
            return [_copied(s) for s in self._rows.values() if s.result in FAILED_RESULTS]

    def count(self, result: str) -> int:
        """Return how many instances have ``result``."""
        with self._lock:
            return sum(1 for state in self._rows.values() if state.result == result)

    def add_output(self, instance: str, operation: str, output: str) -> None:
        """Keep the captured output of a failed operation for the report."""
        if output.strip():
            with self._lock:
                self._outputs.append(f"--- {instance}: {operation} ---\n{output.rstrip()}\n")

    def output(self) -> str:
        """Return the captured output, at most :data:`MAX_REPORT_OUTPUT` bytes (the tail)."""
        with self._lock:
            text = "".join(self._outputs)
        encoded = text.encode("utf-8", errors="replace")
        if len(encoded) <= MAX_REPORT_OUTPUT:
            return text
        kept = encoded[-MAX_REPORT_OUTPUT:].decode("utf-8", errors="ignore")
        return f"[earlier output dropped]\n{kept}"

    def render(self) -> str:
        """Return the table of instances: instance, slot (if any), before, after, result."""
        # Read under the lock without copying the rows: a deploy of a thousand instances
        # renders this at the end of its step, which the step's time includes.
        with self._lock:
            rows = list(self._rows.values())
            with_slots = any(state.slot for state in rows)
            body = []
            for state in rows:
                result = f"{state.result}: {state.message}" if state.message else state.result
                after = "-" if state.result == "removed" else show_version(state.after)
                cells = [state.instance, show_version(state.before), after, result]
                if with_slots:
                    cells.insert(1, state.slot or "-")
                body.append(cells)
        headers = ["instance", *(["slot"] if with_slots else []), "before", "after", "result"]
        return format_table(headers, body)

    def data(self) -> list[dict[str, Any]]:
        """Return the states as JSON data for the step report."""
        # vars() rather than asdict(), which deep-copies every value: the fields are
        # strings, None and a bool.
        with self._lock:
            return [dict(vars(state)) for state in self._rows.values()]


def _copied(state: InstanceState) -> InstanceState:
    # A third of the cost of copy.copy() or dataclasses.replace(), which counts for
    # the thousand rows of a large deploy: its report reads them all more than once.
    return InstanceState(**vars(state))


def show_version(version: str | None) -> str:
    return UNKNOWN if version is None else version


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Format a plain-text table with columns padded to their widest cell."""
    lines = [headers, *rows]
    widths = [max(map(len, column)) for column in zip(*lines, strict=True)]
    # Every cell but the last is padded to its column's width. One format string pads
    # a whole row, which costs a fraction of one ljust() call per cell.
    template = "  ".join([*(f"{{:<{width}}}" for width in widths[:-1]), "{}"])
    return "\n".join(template.format(*line).rstrip() for line in lines)


def plural(count: int, noun: str) -> str:
    """Return ``count`` with ``noun``, adding an ``s`` unless it is 1 (``3 attempts``)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
