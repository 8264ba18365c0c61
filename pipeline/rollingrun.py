"""Running a rolling deploy: the batches, their checks and analyses, and the rollback.

:mod:`pipeline.builtin.rolling` declares and checks the strategy's options; it
imports this module when a step runs, so that ``shipline validate`` does not import
the rollout machinery.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeline.builtin.rolling import RollingOptions
from pipeline.rollout import (
    Rollout,
    StepFailed,
    parse_amount,
    restore_previous,
    run_checks,
    serving_instances,
    split_batches,
)
from pipeline.rolloutparallel import started_pool
from pipeline.target import Capability

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.context import RunContext
    from pipeline.plan import Step
    from pipeline.report import StepReport


class RollingStrategy:
    """Updates instances in place, batch by batch; see the module documentation."""

    def requires(self) -> frozenset[Capability]:
        return frozenset()

    def run(self, step: Step, context: RunContext) -> StepReport:
        options = RollingOptions.parse(step.options)
        rollout = Rollout.start(step, context)
        return rollout.run(lambda r: _roll(r, options))


def _roll(rollout: Rollout, options: RollingOptions) -> str:
    """Update every serving instance batch by batch; return the success message."""
    instances = serving_instances(rollout.target, rollout.router)
    if not instances:
        raise StepFailed(f"environment '{rollout.environment_name}' has no instances")
    total = len(instances)
    batches = split_batches(instances, options.batch)
    limits = [options.in_flight(len(batch), total) for batch in batches]
    allowed = parse_amount(options.max_failures, total, option="max_failures", round_up=False)
    rollout.table.update_all(instances, result="not reached")
    _register_rollback(rollout, workers=options.rollback_workers(total))

    stop = threading.Event()
    pool = started_pool(max(limits), "shipline-rolling")
    try:
        for number, (batch, limit) in enumerate(zip(batches, limits, strict=True), start=1):
            where = f"batch {number} of {len(batches)}"
            rollout.check_cancelled(f"before {where}")
            _update_batch(rollout, options, batch, limit=limit, stop=stop, allowed=allowed,
                          pool=pool)
            rollout.check_cancelled(f"during {where}")
            _fail_beyond(rollout, total, allowed)

            if options.checks:
                _run_batch_checks(rollout, options, batch, limit=limit, where=where, pool=pool)
                _fail_beyond(rollout, total, allowed)
            _run_batch_analysis(rollout, options, number, where)

            # A batch whose instances all ran the version already (as after --resume)
            # changed nothing to watch, so it gets no pause.
            changed = any(state.result != "unchanged"
                          for state in rollout.table.get_all(batch))
            if number < len(batches) and options.pause > 0 and changed:
                rollout.sleep(options.pause, f"during the pause after {where}")
    finally:
        # Not waiting for the idle threads to exit saves 2 ms at the end of the step;
        # run_parallel has waited for every call already.
        pool.shutdown(wait=False)
    return _success_message(rollout, total, len(batches), allowed)


def _register_rollback(rollout: Rollout, workers: int) -> None:
    target = rollout.target
    context = rollout.context

    def restore() -> str:
        states = rollout.table.rows()
        if not any(state.touched for state in states):
            return "nothing to restore: no instance was changed"
        return restore_previous(target, states, fallback=rollout.fallback,
                                cancel=context.cancel, workers=workers)

    context.add_rollback(rollout.step, f"restore the versions that ran before {rollout.version}",
                         restore)


def _update_batch(
    rollout: Rollout,
    options: RollingOptions,
    batch: Sequence[str],
    *,
    limit: int,
    stop: threading.Event,
    allowed: int,
    pool: ThreadPoolExecutor,
) -> None:
    """Update the instances of one batch, ``limit`` at a time.

    Once more than ``allowed`` instances of the whole step have failed, instances of the
    batch that have not started are left alone.
    """
    lock = threading.Lock()

    def failed(_instance: str) -> None:
        with lock:
            if _failures(rollout) > allowed:
                stop.set()

    rollout.update_instances(batch, options.health, workers=limit, pool=pool, stop=stop,
                             on_failure=failed)


def _run_batch_checks(
    rollout: Rollout,
    options: RollingOptions,
    batch: Sequence[str],
    *,
    limit: int,
    where: str,
    pool: ThreadPoolExecutor,
) -> None:
    updated = [state.instance for state in rollout.table.get_all(batch)
               if state.result == "updated"]
    runs = run_checks(options.checks, rollout.context, instances=updated,
                      placeholders={"version": rollout.version}, workers=limit, pool=pool)
    rollout.check_cancelled(f"during the checks after {where}")

    for run in runs:
        if run.ok:
            continue
        name = run.instance or run.label
        rollout.table.add_output(name, run.label, run.output)
        if run.instance is None:
            raise StepFailed(f"{where}: {run.message}")
        rollout.table.update(run.instance, result="check failed", message=run.message)


def _failures(rollout: Rollout) -> int:
    return len(rollout.table.failures())


#: Instances named after the first one in the message of a step that failed too many.
_NAMED_FAILURES = 5


def _fail_beyond(rollout: Rollout, total: int, allowed: int) -> None:
    failed = rollout.table.failures()
    if len(failed) > allowed:
        # The message names the first failure and a few more instances; the step's table
        # lists every instance.
        first = failed[0]
        others = ""
        if len(failed) > 1:
            named = [state.instance for state in failed[1:1 + _NAMED_FAILURES]]
            rest = len(failed) - 1 - len(named)
            others = f"; also failed: {', '.join(named)}" + (f" and {rest} more" if rest else "")
        raise StepFailed(
            f"{len(failed)} of {total} instances failed and max_failures allows {allowed}: "
            f"{first.instance}: {first.message}{others}"
        )


def _success_message(rollout: Rollout, total: int, batches: int, allowed: int) -> str:
    updated = rollout.table.count("updated")
    unchanged = rollout.table.count("unchanged")
    failed = _failures(rollout)
    plural = "batch" if batches == 1 else "batches"
    message = f"{rollout.version} deployed to {updated} of {total} instances in {batches} {plural}"
    if unchanged:
        message += f"; {unchanged} already ran it"
    if failed:
        message += f"; {failed} failed, within max_failures ({allowed})"
    return message


# -- hooks -------------------------------------------------------------------------------


def _run_batch_analysis(
    rollout: Rollout, options: RollingOptions, number: int, where: str
) -> None:
    """Run the step's ``analysis`` after batch ``number``; raise StepFailed unless it passes."""
    if options.analysis is None:
        return
    from pipeline.analysisstep import analyse_rollout, rollout_endpoint

    analyse_rollout(rollout, options.analysis, stable=rollout.fallback,
                    endpoint=rollout_endpoint(rollout), step=number, where=f"{where}: ")
