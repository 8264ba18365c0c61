"""Machinery shared by the rolling, blue-green and canary strategies.

A strategy module decides the order and pacing of a deploy. Everything else lives here:

- finding the router (:func:`resolve_router`) and the instances that serve traffic;
- counts and percentages of instances (``3``, ``"25%"``) and batch plans;
- calling a target on many instances at once (:func:`run_parallel`) and waiting for
  an instance to pass its health check (:func:`wait_healthy`);
- running check specs after a batch or before a promotion (:func:`run_checks`);
- the record of every instance a deploy looked at (:class:`InstanceTable`), which
  becomes the details table, the captured output and the ``data`` of the step report;
- rollback actions that put previous versions back or discard a canary, and raise
  :class:`~pipeline.context.RollbackFailed` with a table of where every instance ended up;
- :class:`Rollout`, which ties one deploy step to its target, router and table and turns
  failures and interrupts into step reports that carry that table.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pipeline.context import Interrupted, RollbackFailed
from pipeline.durations import DURATION_PATTERN, format_duration, parse_duration
from pipeline.errors import ShiplineError
from pipeline.report import Outcome, StepReport
from pipeline.target import Capability, InstanceResult, Router, Target

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.context import RunContext
    from pipeline.diagnostics import Diagnostic
    from pipeline.plan import Plan, Step

logger = logging.getLogger("shipline")

#: Waits of at least this many seconds are announced, so a CI log does not look hung.
PROGRESS_AFTER = 1.0

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: Maximum number of instances that a slot deploy, a rollback or a removal changes at once.
MAX_PARALLEL = 64

#: Bytes of captured command output kept in one step report (the tail of the whole).
MAX_REPORT_OUTPUT = 256 * 1024

#: Text shown for a version that could not be read.
UNKNOWN = "?"

#: Results of an instance that count as failures of the deploy.
FAILED_RESULTS = frozenset({"failed", "unhealthy", "check failed"})


class OptionError(ShiplineError):
    """An option of a deploy step has a value that the strategy cannot use."""


class StepFailed(ShiplineError):
    """Raised inside a strategy to end its step as FAILED with the message given."""


# -- router and instances ----------------------------------------------------------------


def resolve_router(context: RunContext) -> Router | None:
    """Return the router of the stage's environment.

    The environment's own ``router:`` comes first. Without one, the target is the
    router when it implements :class:`~pipeline.target.Router` and its capabilities
    include WEIGHTS or SLOTS. Otherwise there is no router.
    """
    router = context.router()
    if router is not None:
        return router

    target = context.target()
    if isinstance(target, Router) and target.capabilities() & {
        Capability.WEIGHTS,
        Capability.SLOTS,
    }:
        return target
    return None


def capabilities_of(target: Target, router: Router | None) -> frozenset[Capability]:
    """Return what the target and router can do together, as created for this run."""
    found = target.capabilities()
    if router is not None and id(router) != id(target):
        found |= router.capabilities()
    return found


def other_slot(target: Target, slot: str | None) -> str:
    """Return the slot that is not ``slot``: the idle one when ``slot`` is active.

    With no active slot, the first slot is the idle one. Raises StepFailed when the
    target does not have exactly two slots.
    """
    slots = list(target.slots())
    if len(slots) != 2:
        raise StepFailed(
            f"the target has {len(slots)} slots ({', '.join(slots) or 'none'}); "
            "blue-green and canary deploys through a router need exactly two"
        )
    if slot is None:
        return slots[0]
    if slot not in slots:
        raise StepFailed(
            f"the router's active slot '{slot}' is not a slot of the target "
            f"({', '.join(slots)})"
        )
    return slots[1] if slot == slots[0] else slots[0]


def serving_instances(target: Target, router: Router | None) -> list[str]:
    """Return the instances that serve traffic now, in the target's order.

    For a target with slots that is the active slot's instances; without a known
    active slot, or without slots, all instances.
    """
    if target.slots() and router is not None:
        active = router.active_slot()
        if active is not None:
            return list(target.instances(active))
    return list(target.instances())


# -- counts and percentages --------------------------------------------------------------

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def parse_amount(
    value: object, total: int, *, option: str, round_up: bool, allow_zero: bool = True
) -> int:
    """Turn a count (``3``) or a percentage of ``total`` (``"25%"``) into a count.

    Percentages are exact (``"10%"`` of 30 is 3) and round up when ``round_up`` is set,
    down otherwise. Raises OptionError, naming ``option``, for a negative count, a
    percentage above 100, any other value, and 0 or 0% when ``allow_zero`` is false.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OptionError(
            f"{option}: {value!r} is not valid: use a count such as 3 or a percentage "
            "such as '25%'"
        )

    if isinstance(value, int) or value.strip().isdigit():
        count = int(value)
        if count < 0 or (count == 0 and not allow_zero):
            lowest = 0 if allow_zero else 1
            raise OptionError(f"{option}: {value!r} is not valid: use {lowest} or more")
        return count

    from fractions import Fraction  # Imported here: it imports decimal, slow to import.

    match = _PERCENT.fullmatch(value.strip())
    if match is None:
        raise OptionError(
            f"{option}: {value!r} is not valid: use a count such as 3 or a percentage "
            "such as '25%'"
        )
    share = Fraction(match.group(1))
    if share > 100 or (share == 0 and not allow_zero):
        lowest_share = "0%" if allow_zero else "more than 0%"
        raise OptionError(f"{option}: {value!r} is not valid: use {lowest_share} up to 100%")

    exact = share * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def batch_sizes(total: int, batch: object) -> list[int]:
    """Return the size of each batch that updates ``total`` instances, in order.

    ``batch`` is a count, a percentage of ``total`` (rounded up), or a list of them
    where the last entry repeats until every instance has a batch. Each batch has at
    least one instance, and the last one takes only what remains. Raises OptionError
    for an empty list or an invalid entry.
    """
    if isinstance(batch, Sequence) and not isinstance(batch, str):
        specs = list(batch)
        names = [f"batch[{index}]" for index in range(len(specs))]
    else:
        specs = [batch]
        names = ["batch"]
    if not specs:
        raise OptionError("batch: the list is empty: give at least one batch size")
    counts = [
        parse_amount(spec, total, option=name, round_up=True, allow_zero=False)
        for spec, name in zip(specs, names, strict=True)
    ]

    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        size = min(max(counts[min(len(sizes), len(counts) - 1)], 1), remaining)
        sizes.append(size)
        remaining -= size
    return sizes


def split_batches(instances: Sequence[str], batch: object) -> list[list[str]]:
    """Split ``instances`` into consecutive batches as :func:`batch_sizes` plans them."""
    batches = []
    start = 0
    for size in batch_sizes(len(instances), batch):
        batches.append(list(instances[start : start + size]))
        start += size
    return batches


def instances_for_weight(weight: int, total: int) -> int:
    """Return how many of ``total`` instances run a canary that gets ``weight`` percent.

    The share rounds up, so any weight above 0 gets at least one instance.
    """
    from fractions import Fraction

    if not 0 <= weight <= 100:
        raise OptionError(f"set_weight: {weight} is not valid: use 0 to 100")
    return math.ceil(Fraction(weight * total, 100))


# -- running operations in parallel ------------------------------------------------------


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


# -- health ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthPolicy:
    """How long an instance may take to pass ``target.health`` after a deploy.

    Each attempt is one call of the target's health check. A failed attempt is
    repeated ``retries`` times, ``interval`` seconds apart, as long as the next attempt
    starts within ``timeout`` seconds of the first.
    """

    enabled: bool = True
    timeout: float = 60.0
    retries: int = 5
    interval: float = 2.0

    @classmethod
    def parse(cls, value: object, option: str = "health") -> HealthPolicy:
        """Build a policy from the ``health`` option: a mapping, ``false`` or missing."""
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(enabled=False)
        if not isinstance(value, Mapping):
            raise OptionError(f"{option}: expected a mapping or false")

        default = cls()
        retries = value.get("retries", default.retries)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise OptionError(f"{option}.retries: {retries!r} is not valid: use 0 or more")
        return cls(
            timeout=option_duration(value, "timeout", default.timeout, option),
            retries=retries,
            interval=option_duration(value, "interval", default.interval, option),
        )

    def longest(self) -> float:
        """Return the longest a health wait can take, in seconds, for plan estimates."""
        if not self.enabled:
            return 0.0
        return min(self.timeout, self.retries * self.interval)


def wait_healthy(
    target: Target, instance: str, policy: HealthPolicy, context: RunContext
) -> InstanceResult:
    """Call ``target.health`` on ``instance`` until it passes or the policy gives up.

    Returns a failed result naming the number of attempts and the last message when
    the retries or the timeout run out, or when the run is cancelled while waiting.
    """
    if not policy.enabled:
        return InstanceResult(instance, True, "health check disabled")

    clock = context.clock
    started = clock.monotonic()
    attempts = 0
    while True:
        attempts += 1
        result = call_target("health", instance, lambda: target.health(instance, context.cancel))
        elapsed = clock.monotonic() - started
        if result.ok:
            return InstanceResult(instance, True, f"healthy after {_times(attempts, 'attempt')}",
                                  duration=elapsed)

        if attempts > policy.retries:
            message = f"health check failed {_times(attempts, 'time')}: {result.message}"
            return InstanceResult(instance, False, message, result.output, elapsed)
        if elapsed + policy.interval > policy.timeout:
            message = (f"not healthy within {format_duration(policy.timeout)} "
                       f"({_times(attempts, 'attempt')}): {result.message}")
            return InstanceResult(instance, False, message, result.output, elapsed)

        if not context.sleep(policy.interval):
            return InstanceResult(instance, False, "cancelled while waiting to be healthy",
                                  duration=clock.monotonic() - started)


def _times(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# -- checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRun:
    """The result of one check spec, run once or once for one instance."""

    label: str
    instance: str | None
    ok: bool
    message: str
    output: str = ""


def mentions(spec: object, placeholder: str) -> bool:
    """Return whether any string inside ``spec`` contains ``{placeholder}``.

    ``{{placeholder}}`` is a literal text in command templates and does not count.
    """
    pattern = re.compile(r"(?<!\{)\{" + re.escape(placeholder) + r"\}(?!\})")
    if isinstance(spec, str):
        return pattern.search(spec) is not None
    if isinstance(spec, Mapping):
        return any(mentions(value, placeholder) for value in spec.values())
    if isinstance(spec, Sequence):
        return any(mentions(item, placeholder) for item in spec)
    return False


def run_checks(
    specs: Sequence[Mapping[str, Any]],
    context: RunContext,
    *,
    instances: Sequence[str],
    placeholders: Mapping[str, str],
    workers: int,
    pool: ThreadPoolExecutor | None = None,
) -> list[CheckRun]:
    """Run each check spec, in parallel, and return one result per run.

    A spec that mentions ``{instance}`` runs once per instance of ``instances``, with
    that instance filled in; any other spec runs once. ``placeholders`` fill in the
    rest (``{version}``, ``{slot}``), and ``{endpoint}`` is the router's URL when the
    environment has a router that knows it. Commands run in the pipeline file's folder.
    """
    from pipeline.checks import describe_check, run_check

    router = resolve_router(context)
    endpoint = router.endpoint() if router is not None else None
    if endpoint is not None:
        placeholders = {"endpoint": endpoint, **placeholders}

    planned: list[tuple[str, Mapping[str, Any], str | None]] = []
    for index, spec in enumerate(specs):
        label = f"check {index + 1} ({_describe(describe_check, spec)})"
        if mentions(spec, "instance"):
            planned += [(label, spec, instance) for instance in instances]
        else:
            planned.append((label, spec, None))

    def run_one(item: tuple[str, Mapping[str, Any], str | None]) -> CheckRun:
        label, spec, instance = item
        values = dict(placeholders)
        if instance is not None:
            values["instance"] = instance
        try:
            result = run_check(spec, clock=context.clock, cancel=context.cancel,
                               placeholders=values, cwd=context.plan.file.parent)
        except (ValueError, ShiplineError) as exc:
            return CheckRun(label, instance, False, f"{label}: {exc}")
        return CheckRun(label, instance, result.ok, result.message, result.output)

    return run_parallel(planned, run_one, workers=workers, pool=pool)


def _describe(describe: Callable[[Mapping[str, Any]], str], spec: Mapping[str, Any]) -> str:
    try:
        return describe(spec)
    except (ValueError, KeyError):
        return "invalid check"


# -- the record of instances -------------------------------------------------------------


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
        with self._lock:
            state = self._rows.setdefault(instance, InstanceState(instance))
            for name, value in fields.items():
                setattr(state, name, value)

    def get(self, instance: str) -> InstanceState:
        """Return a copy of the state of ``instance``; raise KeyError if it is unknown."""
        with self._lock:
            return copy.copy(self._rows[instance])

    def rows(self) -> list[InstanceState]:
        """Return copies of every state, in the order the instances were first seen."""
        with self._lock:
            return [copy.copy(state) for state in self._rows.values()]

    def failures(self) -> list[InstanceState]:
        """Return copies of the states whose result is one of :data:`FAILED_RESULTS`."""
        with self._lock:
            return [copy.copy(s) for s in self._rows.values() if s.result in FAILED_RESULTS]

    def count(self, result: str) -> int:
        return sum(1 for state in self.rows() if state.result == result)

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
        rows = self.rows()
        with_slots = any(state.slot for state in rows)
        headers = ["instance", *(["slot"] if with_slots else []), "before", "after", "result"]
        body = []
        for state in rows:
            result = f"{state.result}: {state.message}" if state.message else state.result
            cells = [state.instance, *([state.slot or "-"] if with_slots else [])]
            after = "-" if state.result == "removed" else show_version(state.after)
            body.append([*cells, show_version(state.before), after, result])
        return format_table(headers, body)

    def data(self) -> list[dict[str, Any]]:
        """Return the states as JSON data for the step report."""
        return [asdict(state) for state in self.rows()]


def show_version(version: str | None) -> str:
    return UNKNOWN if version is None else version


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Format a plain-text table with columns padded to their widest cell."""
    lines = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    formatted = []
    for line in lines:
        padded = [cell.ljust(width) for cell, width in zip(line[:-1], widths[:-1], strict=True)]
        formatted.append("  ".join([*padded, line[-1]]).rstrip())
    return "\n".join(formatted)


# -- rollback helpers --------------------------------------------------------------------


@dataclass(frozen=True)
class _Restored:
    instance: str
    expected: str | None
    ok: bool
    message: str


def restore_previous(
    target: Target,
    states: Sequence[InstanceState],
    *,
    fallback: str | None,
    cancel: threading.Event,
    workers: int = MAX_PARALLEL,
) -> str:
    """Deploy the previous version again on every touched instance of ``states``, in
    parallel, and return a one-line summary.

    The previous version is the one read before the change, else ``fallback`` (the
    step's ``previous_version`` option). Raises RollbackFailed with a table of every
    instance in ``states``, the version it should run and the version it runs now, if
    any touched instance has no known previous version or its deploy failed.
    """
    touched = [state for state in states if state.touched]

    def restore(state: InstanceState) -> _Restored:
        previous = state.before or fallback
        if previous is None:
            return _Restored(state.instance, None, False,
                             "previous version unknown: set 'previous_version' on the step")
        # A deploy that failed before changing anything (a command not found, say) left
        # the previous version in place; deploying it again would fail the same way. The
        # health check guards against a deploy that stopped the service and then failed
        # with the old version still recorded.
        if state.before is not None and _still_serving(target, state.instance, previous, cancel):
            return _Restored(state.instance, previous, True, "still on the previous version")
        result = call_target("deploy", state.instance,
                             lambda: target.deploy(state.instance, previous, cancel))
        message = "restored" if result.ok else f"restore failed: {result.message}"
        return _Restored(state.instance, previous, result.ok, message)

    results = run_parallel(touched, restore, workers=workers)
    failed = [result for result in results if not result.ok]
    if failed:
        raise RollbackFailed(
            f"{len(failed)} of {len(touched)} instances could not be restored to their "
            f"previous version",
            _restore_table(target, states, results, workers),
        )
    return f"restored the previous version ({_versions(results)}) on {_count(touched)}"


def _still_serving(target: Target, instance: str, version: str, cancel: threading.Event) -> bool:
    """Return whether ``instance`` runs ``version`` and passes its health check."""
    try:
        return target.version(instance) == version and target.health(instance, cancel).ok
    except Exception:
        logger.warning("checking whether %s still serves %s failed", instance, version,
                       exc_info=True)
        return False


def _restore_table(
    target: Target, states: Sequence[InstanceState], results: Sequence[_Restored], workers: int
) -> str:
    """Return where every instance ended up after a partial restore, read from the target."""
    by_instance = {result.instance: result for result in results}
    names = [state.instance for state in states]
    running = run_parallel(names, target.version, workers=workers)

    rows = []
    for state, now in zip(states, running, strict=True):
        result = by_instance.get(state.instance)
        if result is None:
            rows.append([state.instance, show_version(state.before), show_version(now),
                         "not changed by this deploy"])
        else:
            rows.append([state.instance, show_version(result.expected), show_version(now),
                         result.message])
    return format_table(["instance", "expected", "running", "result"], rows)


def _versions(results: Sequence[_Restored]) -> str:
    versions = sorted({result.expected for result in results if result.expected})
    return ", ".join(versions) if versions else "none"


def _count(items: Sequence[object], noun: str = "instance") -> str:
    return _times(len(items), noun)


def remove_version(
    target: Target,
    instances: Sequence[str],
    version: str,
    *,
    cancel: threading.Event,
    workers: int = MAX_PARALLEL,
) -> list[InstanceResult]:
    """Call ``target.remove(instance, version)`` on every instance, in parallel."""

    def remove(instance: str) -> InstanceResult:
        return call_target("remove", instance, lambda: target.remove(instance, version, cancel))

    return run_parallel(instances, remove, workers=workers)


def removal_failure(
    target: Target, results: Sequence[InstanceResult], version: str, workers: int = MAX_PARALLEL
) -> RollbackFailed | None:
    """Return the RollbackFailed to raise if any removal in ``results`` failed, else None."""
    failed = [result for result in results if not result.ok]
    if not failed:
        return None
    names = [result.instance for result in results]
    running = run_parallel(names, target.version, workers=workers)
    rows = [
        [result.instance, show_version(now), "removed" if result.ok else
         f"remove failed: {result.message}"]
        for result, now in zip(results, running, strict=True)
    ]
    return RollbackFailed(
        f"{len(failed)} of {len(results)} instances still run {version}: removing it failed",
        format_table(["instance", "running", "result"], rows),
    )


# -- one deploy step ---------------------------------------------------------------------


@dataclass
class Rollout:
    """One run of a deploy step: its options, target, router, record and report data.

    Create it inside ``Strategy.run``; :meth:`run` calls the strategy's body and turns
    its outcome into a report.
    """

    step: Step
    context: RunContext
    target: Target
    router: Router | None
    table: InstanceTable = field(default_factory=InstanceTable)
    #: Extra ``data`` of the report (``weights``, ``analysis``...).
    data: dict[str, Any] = field(default_factory=dict)
    #: Extra text for the report details, after the instance table.
    sections: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, step: Step, context: RunContext) -> Rollout:
        """Create the rollout of ``step``, creating the target and finding the router."""
        target = context.target()
        return cls(step, context, target, resolve_router(context))

    @property
    def version(self) -> str:
        return str(self.step.options["version"])

    @property
    def fallback(self) -> str | None:
        """The ``previous_version`` option: what rollbacks restore when a version is unknown."""
        value = self.step.options.get("previous_version")
        return None if value is None else str(value)

    @property
    def environment_name(self) -> str:
        environment = self.context.environment
        return environment.name if environment is not None else "?"

    def run(self, body: Callable[[Rollout], str]) -> StepReport:
        """Run ``body`` and return the report; ``body`` returns the success message.

        StepFailed becomes a FAILED report and Interrupted an INTERRUPTED one, both with
        the instance table, so the runner rolls back and the user sees where things are.
        """
        try:
            message = body(self)
        except StepFailed as exc:
            # INFO, as for every step failure: the terminal report already shows it.
            logger.info("step %s failed: %s", self.step.id, exc)
            return self.report(Outcome.FAILED, str(exc))
        except Interrupted as exc:
            logger.info("step %s stopped: %s", self.step.id, exc)
            return self.report(Outcome.INTERRUPTED, str(exc))

        self.context.outputs["deployed-version"] = self.version
        return self.report(Outcome.PASSED, message)

    def report(self, outcome: Outcome, message: str) -> StepReport:
        parts = [self.table.render()] if self.table.rows() else []
        details = "\n\n".join([*parts, *self.sections])
        return StepReport(
            step_id=self.step.id, name=self.step.name, kind=self.step.kind, outcome=outcome,
            message=message, details=details, output=self.table.output(),
            plugin=self.step.plugin, mark=self.step.mark,
            data={"version": self.version, "instances": self.table.data(), **self.data},
        )

    def check_cancelled(self, during: str) -> None:
        """Raise Interrupted (``interrupted <during>``) if the run was cancelled."""
        if self.context.cancelled:
            raise Interrupted(f"interrupted {during}")

    def sleep(self, seconds: float, during: str) -> None:
        """Wait on the run's clock; raise Interrupted if the run is cancelled meanwhile.

        ``during`` completes "interrupted ..." and "waiting 30s ...", as in "during the
        pause of step 2".
        """
        if seconds >= PROGRESS_AFTER:
            self.context.progress(f"waiting {format_duration(seconds)} {during}")
        if not self.context.sleep(seconds):
            raise Interrupted(f"interrupted {during}")

    def read_version(self, instance: str) -> str | None:
        """Return the version ``instance`` runs, or ``None`` if the target cannot read it."""
        return self.target.version(instance)

    def deploy_instance(self, instance: str, version: str | None = None) -> InstanceResult:
        """Deploy ``version`` (default: the step's) to ``instance`` and record the result.

        Marks the instance touched before calling the target, so that a rollback covers
        a deploy that failed halfway. A failure keeps the captured output for the report.
        """
        version = version or self.version
        self.table.update(instance, touched=True, result="deploying")
        result = call_target("deploy", instance,
                             lambda: self.target.deploy(instance, version, self.context.cancel))
        if result.ok:
            self.table.update(instance, after=version, result="deployed")
        else:
            self.table.update(instance, after=self.read_version(instance), result="failed",
                              message=f"deploy failed: {result.message}")
            self.table.add_output(instance, "deploy", result.output)
        return result

    def update_instance(
        self, instance: str, health: HealthPolicy, stop: threading.Event | None = None
    ) -> bool:
        """Move one serving instance to the step's version in place and wait until it is
        healthy. Return False if the deploy or the health check failed.

        The version running before is read first and recorded for the rollback. An
        instance that already runs the step's version is left alone, with the result
        ``unchanged``. Once ``stop`` or the run's cancel event is set, nothing is done and
        the instance keeps the result it had.
        """
        if (stop is not None and stop.is_set()) or self.context.cancelled:
            return True

        before = self.read_version(instance)
        self.table.update(instance, before=before, after=before)
        if before == self.version:
            self.table.update(instance, result="unchanged", message=f"already runs {before}")
            return True

        if not self.deploy_instance(instance).ok:
            return False
        if not self.check_health(instance, health).ok:
            return False
        self.table.update(instance, result="updated", message="")
        return True

    def check_health(self, instance: str, policy: HealthPolicy) -> InstanceResult:
        """Wait for ``instance`` to pass its health check and record a failure."""
        result = wait_healthy(self.target, instance, policy, self.context)
        if not result.ok:
            self.table.update(instance, result="unhealthy", message=result.message)
            self.table.add_output(instance, "health", result.output)
        return result

    def record_weight(self, weight: int, **extra: Any) -> None:
        """Append a point to the ``weights`` timeline of the report data.

        A rollback appends its own point (``rollback: true``) after the report was
        published, so reporters that write at the end of the run see it too.
        """
        timeline = self.data.setdefault("weights", [])
        timeline.append({"time": self.context.clock.time(), "weight": weight, **extra})

    def route(self, action: str, call: Callable[[], None]) -> None:
        """Call a router primitive; an expected error (ShiplineError) fails the step."""
        try:
            call()
        except ShiplineError as exc:
            raise StepFailed(f"{action} failed: {exc}") from exc


def require_router(rollout: Rollout, needed: Iterable[Capability], strategy: str) -> Router:
    """Return the rollout's router; raise StepFailed unless it offers ``needed``."""
    router = rollout.router
    available = capabilities_of(rollout.target, router)
    missing = sorted(capability.value for capability in needed if capability not in available)
    if router is None or missing:
        what = " and ".join(missing) if missing else "a router"
        raise StepFailed(
            f"strategy '{strategy}' needs {what}, which environment "
            f"'{rollout.environment_name}' does not provide"
        )
    return router


# -- options -----------------------------------------------------------------------------


def option_duration(
    options: Mapping[str, Any], key: str, default: float, prefix: str = ""
) -> float:
    """Return the duration option ``key`` in seconds, or ``default`` when it is missing.

    Raises OptionError naming the option (``prefix.key``) for an invalid duration.
    """
    if key not in options:
        return default
    try:
        return parse_duration(options[key])
    except ValueError as exc:
        name = f"{prefix}.{key}" if prefix else key
        raise OptionError(f"{name}: {exc}") from exc


#: Longest a single deploy of one instance can take, per built-in target type, in
#: seconds: the command target's per-command ``timeout`` (default 5m), and the local
#: target's ``start_timeout`` (default 10s) plus the time to stop the old process.
_DEPLOY_LIMITS = {"command": ("timeout", 300.0), "local": ("start_timeout", 15.0)}


def deploy_time_limit(plan: Plan, step: Step) -> float | None:
    """Return the longest one instance's deploy can take on the step's target, in
    seconds, or None for a target type whose limit is unknown (a plugin's)."""
    stage = plan.stage(step.stage)
    if stage.environment is None or stage.environment not in plan.environments:
        return None
    options = plan.environments[stage.environment].target
    known = _DEPLOY_LIMITS.get(str(options.get("type")))
    if known is None:
        return None
    key, default = known
    value = options.get(key)
    return default if value is None else parse_duration(value)


def environment_instance_count(plan: Plan, step: Step) -> int | None:
    """Return how many instances serve traffic in the step's environment, read from the
    target's ``instances`` option (a list or a count) or from its ``slots`` (the size of
    the largest slot). Return None when the pipeline file lists neither.
    """
    stage = plan.stage(step.stage)
    if stage.environment is None or stage.environment not in plan.environments:
        return None
    options = plan.environments[stage.environment].target
    instances = options.get("instances")
    if isinstance(instances, int) and not isinstance(instances, bool):
        return instances
    if isinstance(instances, Sequence) and not isinstance(instances, str):
        return len(instances)

    slots = options.get("slots")
    if isinstance(slots, Mapping):
        sizes = [len(members) for members in slots.values()
                 if isinstance(members, Sequence) and not isinstance(members, str)]
        return max(sizes) if sizes else None
    return None


# -- schema pieces -----------------------------------------------------------------------

#: A duration: seconds as a number, or a string such as ``500ms``, ``30s``, ``5m``.
DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
}

#: A count of instances or a percentage of them.
AMOUNT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?%$"},
    ],
}


def described(schema: Mapping[str, Any], title: str, description: str) -> dict[str, Any]:
    """Return a copy of ``schema`` with a title and a description, for option fragments."""
    return {**schema, "title": title, "description": description}


def health_schema() -> dict[str, Any]:
    """Return the JSON Schema of the ``health`` option shared by the strategies."""
    return {
        "title": "Health check",
        "description": "How long each updated instance may take to pass the target's "
        "health check, or false to skip it.",
        "anyOf": [
            {"const": False},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "timeout": described(DURATION_SCHEMA, "Health timeout",
                                         "Time within which the instance must pass (default "
                                         "60s)."),
                    "retries": {"title": "Health retries",
                                "description": "Failed attempts repeated before the instance "
                                "counts as failed (default 5).",
                                "type": "integer", "minimum": 0},
                    "interval": described(DURATION_SCHEMA, "Health interval",
                                          "Wait between two attempts (default 2s)."),
                },
            },
        ],
    }


def check_list_schema(title: str, description: str) -> dict[str, Any]:
    """Return the JSON Schema of a list of checks (``http`` or ``command``)."""
    from pipeline.checks import CHECK_SCHEMA

    return {"title": title, "description": description, "type": "array",
            "items": dict(CHECK_SCHEMA)}


def previous_version_schema() -> dict[str, Any]:
    return {
        "title": "Previous version",
        "description": "The version a rollback restores on instances whose running "
        "version the target cannot read. Without it, such a rollback fails (exit 4).",
        "type": "string",
    }


def option_diagnostics(
    plan: Plan, strategy: str, parse: Callable[[Step], object]
) -> list[Diagnostic]:
    """Parse the options of every deploy step of ``strategy`` in ``plan`` with ``parse``
    and return one diagnostic per OptionError, so that ``shipline validate`` reports
    what the JSON Schema cannot express (a percentage above 100, for example).
    """
    from pipeline.diagnostics import Diagnostic

    diagnostics = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "deploy" or step.type != strategy:
                continue
            try:
                parse(step)
            except ShiplineError as exc:
                diagnostics.append(Diagnostic(str(exc), step.mark, (*step.path, "deploy")))
    return diagnostics


# -- deploys into the idle slot ----------------------------------------------------------


@dataclass
class SlotDeploy:
    """A deploy into the idle slot of a two-slot target, promoted by the router.

    Blue-green and canary (with a router) share it. The idle slot is the one that is
    not active, and it receives the new version while the active slot keeps serving.
    :meth:`undo` is the only rollback action of such a deploy. It puts traffic back on
    the slot that served before, first deploying that slot's previous version again if
    it was scaled down. Then it removes the new version from the idle slot.
    """

    rollout: Rollout
    router: Router
    #: The slot that served before the deploy; ``None`` if no slot did.
    active: str | None
    idle: str
    idle_instances: list[str]
    old_instances: list[str]
    #: A weight was sent to the idle slot and may still be in effect.
    weighted: bool = False
    #: Traffic was switched to the idle slot (the switch may have failed halfway).
    switched: bool = False

    @classmethod
    def prepare(cls, rollout: Rollout, router: Router) -> SlotDeploy:
        """Find the active and idle slots and record every instance of both.

        Raises StepFailed when the target does not have two slots or the idle slot has
        no instances.
        """
        target = rollout.target
        active = router.active_slot()
        idle = other_slot(target, active)
        idle_instances = list(target.instances(idle))
        if not idle_instances:
            raise StepFailed(f"slot '{idle}' has no instances to deploy {rollout.version} to")

        old_instances = list(target.instances(active)) if active is not None else []
        versions = run_parallel(old_instances, target.version, workers=MAX_PARALLEL)
        for instance, version in zip(old_instances, versions, strict=True):
            rollout.table.update(instance, slot=active, before=version, after=version,
                                 result="serving")
        for instance in idle_instances:
            rollout.table.update(instance, slot=idle, result="not reached")
        rollout.data["slots"] = {"active": active, "idle": idle}
        return cls(rollout, router, active, idle, idle_instances, old_instances)

    @property
    def stable_version(self) -> str | None:
        """The version the active slot serves, as read before the deploy, or the fallback."""
        for state in self.rollout.table.rows():
            if state.slot == self.active and state.before:
                return state.before
        return self.rollout.fallback

    def deploy_idle(self, health: HealthPolicy) -> None:
        """Deploy the version to every idle instance in parallel and wait until each is
        healthy; raise StepFailed naming the first instance that failed."""
        rollout = self.rollout

        def deploy(instance: str) -> None:
            if rollout.context.cancelled:
                return
            rollout.table.update(instance, before=rollout.read_version(instance))
            if rollout.deploy_instance(instance).ok and rollout.check_health(instance, health).ok:
                rollout.table.update(instance, result="ready")

        run_parallel(self.idle_instances, deploy, workers=MAX_PARALLEL)
        rollout.check_cancelled(f"while deploying to slot '{self.idle}'")

        failed = [s for s in rollout.table.rows() if s.slot == self.idle and s.result != "ready"]
        if failed:
            first = failed[0]
            raise StepFailed(
                f"{len(failed)} of {len(self.idle_instances)} instances of slot '{self.idle}' "
                f"failed: {first.instance}: {first.message}"
            )

    def set_weight(self, weight: int) -> None:
        """Send ``weight`` percent of requests to the idle slot and record it."""
        self.weighted = True
        self.rollout.route(f"setting the weight of slot '{self.idle}' to {weight}",
                           lambda: self.router.set_weight(self.idle, weight))
        self.rollout.record_weight(weight)

    def switch(self) -> None:
        """Make the idle slot the active one; its instances serve, the old ones go idle."""
        self.switched = True
        self.rollout.route(f"switching traffic to slot '{self.idle}'",
                           lambda: self.router.switch(self.idle))
        for instance in self.idle_instances:
            self.rollout.table.update(instance, result="serving")
        for instance in self.old_instances:
            self.rollout.table.update(instance, result="idle")

    def scale_down(self, delay: float) -> str:
        """Wait ``delay`` seconds, then remove the old version from the old slot.

        Returns a note for the step message when some instance kept its version, because
        the version is unknown or removing it failed. The deploy still counts as done,
        because the new version serves all traffic.
        """
        rollout = self.rollout
        if self.active is None or not self.old_instances:
            return ""
        rollout.sleep(delay, f"during scale_down_delay, before removing slot '{self.active}'")

        def remove(state: InstanceState) -> bool:
            if rollout.context.cancelled:
                return True
            version = state.before or rollout.fallback
            if version is None:
                rollout.table.update(state.instance, result="kept",
                                     message="not removed: its version is unknown")
                return False
            rollout.table.update(state.instance, touched=True)
            result = call_target("remove", state.instance, lambda: rollout.target.remove(
                state.instance, version, rollout.context.cancel))
            if result.ok:
                rollout.table.update(state.instance, after=None, result="removed")
            else:
                rollout.table.update(state.instance, result="kept",
                                     message=f"remove failed: {result.message}")
                rollout.table.add_output(state.instance, "remove", result.output)
            return result.ok

        old = [state for state in rollout.table.rows() if state.slot == self.active]
        removed = run_parallel(old, remove, workers=MAX_PARALLEL)
        rollout.check_cancelled(f"while removing slot '{self.active}'")
        kept = removed.count(False)
        if kept:
            logger.warning("step %s: %d instances of slot %s kept their version",
                           rollout.step.id, kept, self.active)
            return f"; {kept} of {len(old)} instances of slot '{self.active}' kept the old version"
        return ""

    def undo(self) -> str:
        """Roll back: traffic back to the old slot, then the new version off the idle slot.

        Raises RollbackFailed, with a table of what runs where, when traffic cannot be
        put back or the new version cannot be removed. The new version is not removed
        while traffic may still reach it, except when no slot served before the deploy:
        emptying the slot then restores that state.
        """
        done = []
        if self.switched:
            done.append(self._switch_back())
        elif self.weighted:
            self._route_back(f"setting the weight of slot '{self.idle}' back to 0",
                             lambda: self.router.set_weight(self.idle, 0))
            self.weighted = False
            self.rollout.record_weight(0, rollback=True)
            done.append(f"weight of slot '{self.idle}' back to 0")

        touched = [s.instance for s in self.rollout.table.rows()
                   if s.slot == self.idle and s.touched]
        if touched:
            version = self.rollout.version
            results = remove_version(self.rollout.target, touched, version,
                                     cancel=self.rollout.context.cancel)
            failure = removal_failure(self.rollout.target, results, version)
            if failure is not None:
                raise failure
            done.append(f"removed {version} from {_count(touched)} of slot '{self.idle}'")
        return "; ".join(done) or "nothing to undo"

    def _switch_back(self) -> str:
        if self.active is None:
            self.switched = False
            return f"no slot served traffic before the deploy, so slot '{self.idle}' is emptied"

        restored = ""
        if any(s.touched for s in self.rollout.table.rows() if s.slot == self.active):
            old = [s for s in self.rollout.table.rows() if s.slot == self.active]
            restored = restore_previous(self.rollout.target, old, fallback=self.rollout.fallback,
                                        cancel=self.rollout.context.cancel)
        active = self.active
        self._route_back(f"switching traffic back to slot '{active}'",
                         lambda: self.router.switch(active))
        self.switched = False
        self.weighted = False
        if restored:
            return f"traffic back on slot '{active}' ({restored})"
        return f"traffic back on slot '{active}'"

    def _route_back(self, action: str, call: Callable[[], None]) -> None:
        try:
            call()
        except ShiplineError as exc:
            raise RollbackFailed(f"{action} failed: {exc}", self.slot_table()) from exc

    def slot_table(self) -> str:
        """Return a table of every instance of both slots: the version it runs now (read
        from the target) and whether its slot is the one the router marks active."""
        states = self.rollout.table.rows()
        running = run_parallel([s.instance for s in states], self.rollout.target.version,
                               workers=MAX_PARALLEL)
        try:
            active_now = self.router.active_slot()
        except ShiplineError:
            active_now = None
        rows = [
            [s.instance, s.slot or "-", show_version(now),
             "active" if s.slot is not None and s.slot == active_now else "-"]
            for s, now in zip(states, running, strict=True)
        ]
        return format_table(["instance", "slot", "running", "traffic"], rows)
