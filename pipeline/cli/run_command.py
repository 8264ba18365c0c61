"""``shipline run [FILE]``: run the pipeline and exit with a code that reports what happened."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipeline import policy
from pipeline.cli.stateoptions import add_state_option
from pipeline.config import Config
from pipeline.durations import duration_option
from pipeline.exitcodes import ExitCode
from pipeline.planning import load_plan, resolve_pipeline_path
from pipeline.policy import add_policy_argument

if TYPE_CHECKING:
    from pipeline.plan import Plan
    from pipeline.runner import Runner
    from pipeline.staterun import RollbackRequest, RunState


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", parents=parents, help="run the pipeline",
        description="Run every stage of the pipeline in order, rolling back failed deploys. "
        "The exit code says what happened (see 'shipline --help').",
    )
    parser.add_argument("file", nargs="?", help="pipeline file (default: shipline.yml)")
    add_policy_argument(parser)
    parser.add_argument("--junitxml", metavar="PATH",
                        help="write a JUnit XML report to PATH")
    add_state_option(parser)
    parser.add_argument(
        "--lock-wait", metavar="DURATION", type=duration_option, default=0.0,
        help="how long to wait for another run to release an environment's lock, such as "
        "'10m' (default 0s: exit 5 at once)",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="continue a deployment that a killed run left unfinished instead of rolling "
        "it back first",
    )
    return parser


def main(config: Config) -> ExitCode:
    wait = float(config.options.lock_wait)
    path = resolve_pipeline_path(config.options.file, config.invocation_dir)
    loaded = load_plan(path, config)
    policy.enforce(loaded.plan, config.option("policy", []), ExitCode.BLOCKED)
    return execute(loaded.plan, config, wait=wait, resume=config.options.resume)


def execute(plan: Plan, config: Config, *, wait: float, resume: bool,
            rollback: RollbackRequest | None = None) -> ExitCode:
    """Run ``plan`` holding the locks of the environments it deploys to, after the
    recovery of any deployment that a killed run left unfinished there.

    ``rollback`` describes the run of ``shipline rollback``, which the store records
    as a rollback as well as a deployment.
    """
    # Imported here, because every subcommand's module is imported at start-up.
    from pipeline import protect
    from pipeline.runner import Runner

    # Before the runner starts and before any lock, so that a denied run changes nothing.
    protect.enforce(plan)
    runner = Runner(plan, config)
    state = _open_state(plan, config, runner)
    if state is None:
        return runner.run().exit_code

    try:
        recovered = _lock_and_recover(plan, config, state, wait, resume)
        if recovered is not ExitCode.OK:
            return recovered
        runner.context.state = state
        if rollback is None:
            return runner.run().exit_code
        record = state.start_manual_rollback(rollback)
        exit_code = runner.run().exit_code
        state.finish_manual_rollback(record, exit_code is ExitCode.OK)
        return exit_code
    finally:
        state.close()


def _open_state(plan: Plan, config: Config, runner: Runner) -> RunState | None:
    """Open the state store when the plan deploys; a plan without deploy steps needs none."""
    from pipeline.staterun import RunState, deploy_environments

    if not deploy_environments(plan):
        return None
    state = RunState.open(plan, config)
    state.on_lock_lost = runner.interrupt
    return state


def _lock_and_recover(plan: Plan, config: Config, state: RunState, wait: float,
                      resume: bool) -> ExitCode:
    """Take every lock the plan needs, then deal with deployments a killed run left.

    Returns OK when the run may start, or the exit code of a recovery that failed.
    """
    from pipeline.recovery import recover
    from pipeline.staterun import deploy_environments

    environments = deploy_environments(plan)
    cancel = threading.Event()
    with _signals_set(cancel):
        state.lock(environments, wait=wait, cancel=cancel)
    with _sigterm_interrupts():
        return recover(plan, config, state, environments, resume=resume)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM stop the block as SIGINT does: with KeyboardInterrupt, which ends the
    command with exit code 130 and ``shipline: interrupted``.

    The recovery runs before the runner handles signals. Without this, SIGTERM ended
    the process silently with 143. Either way the deployment stays unfinished, and the
    next run recovers it again.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_set(event: threading.Event) -> Iterator[None]:
    """Make SIGINT and SIGTERM set ``event`` instead of stopping the process.

    While a run waits for a lock, the wait runs on the state worker thread, so a
    KeyboardInterrupt in the main thread would leave that thread waiting, and the
    process with it, until ``--lock-wait`` ran out.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        event.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
