"""Rollback actions: put previous versions back, or remove the version a deploy added.

Both raise :class:`~pipeline.context.RollbackFailed` with a table of where every instance
ended up, read from the target, when they cannot finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.context import RollbackFailed
from pipeline.instancetable import InstanceState, format_table, plural, show_version
from pipeline.rolloutparallel import MAX_PARALLEL, call_target, run_parallel
from pipeline.target import InstanceResult, Target

logger = logging.getLogger("shipline")

@dataclass(frozen=True)
class _Restored:
    instance: str
    expected: str | None
    ok: bool
    message: str
    #: The previous version was deployed again; False when the instance still ran it.
    redeployed: bool = True


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
        # the previous version in place, and deploying it again would fail the same way.
        # The health check catches a deploy that stopped the service before it failed.
        if state.before is not None and _still_serving(target, state.instance, previous, cancel):
            return _Restored(state.instance, previous, True, "still on the previous version",
                             redeployed=False)
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
    return _restore_summary(results)


def _restore_summary(results: Sequence[_Restored]) -> str:
    """Say on how many instances the previous version was deployed again, and how many
    still ran it, so that the count matches the deploys that ran."""
    redeployed = sum(1 for result in results if result.redeployed)
    unchanged = len(results) - redeployed
    versions = _versions(results)
    if not unchanged:
        return f"restored the previous version ({versions}) on {plural(redeployed, 'instance')}"
    if not redeployed:
        instances = "the instance" if unchanged == 1 else f"all {unchanged} instances"
        return f"nothing to restore: {instances} still ran the previous version ({versions})"
    return (f"restored the previous version ({versions}) on {plural(redeployed, 'instance')}; "
            f"{unchanged} more still ran it")


def _still_serving(target: Target, instance: str, version: str, cancel: threading.Event) -> bool:
    """Return whether ``instance`` runs ``version`` and passes its health check."""
    # NOTE: a command target without a `health` template reports every instance healthy,
    # so there a deploy that stopped the service before failing is not restored.
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
