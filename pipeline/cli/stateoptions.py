"""Options and helpers shared by the commands that use the state store.

``run``, ``history``, ``status``, ``lock`` and ``rollback`` all accept ``--state URL``.
The commands other than ``run`` take the environment as their argument and the
pipeline file through ``-f/--file``. They read the file only when they need its
``state:`` section or its environments.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import UsageError
from pipeline.state import STATE_VARIABLE

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from pipeline.config import Config
    from pipeline.diagnostics import DocPath
    from pipeline.plan import Plan
    from pipeline.planning import LoadedPlan
    from pipeline.state import StateLocation, StateStore




def add_state_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--state URL`` to ``parser``."""
    parser.add_argument(
        "--state", metavar="URL",
        help="state store: a file path, sqlite:PATH or postgresql://USER@HOST/DATABASE "
        f"(default: ${STATE_VARIABLE}, then the pipeline file's 'state:' section, then "
        ".shipline/state.db beside the pipeline file)",
    )


def add_file_option(parser: argparse.ArgumentParser) -> None:
    """Add ``-f/--file PATH`` to ``parser``."""
    parser.add_argument("-f", "--file", metavar="PATH",
                        help="pipeline file (default: shipline.yml)")


def outside_state(path: DocPath) -> bool:
    """Tolerate an undefined variable anywhere but in the ``state:`` section and in
    ``vars:`` entries, which may feed that section (history, lock)."""
    return bool(path) and path[0] not in ("state", "vars")


def outside_state_and_environments(path: DocPath) -> bool:
    """Tolerate an undefined variable anywhere but in ``state:``, ``environments:`` (the
    targets that status reads) and ``vars:`` entries."""
    return outside_state(path) and path[0] != "environments"


def deploy_version_only(path: DocPath) -> bool:
    """Tolerate an undefined variable only in a step's ``version``, which a rollback
    replaces with the version it rolls back to."""
    return len(path) > 2 and path[0] == "stages" and path[-1] == "version"


def load_for_state(config: Config,
                   tolerate: Callable[[DocPath], bool] | None = None) -> LoadedPlan:
    """Load and check the pipeline file named by ``--file``, or the default one.

    ``tolerate`` selects where an undefined variable is not an error, because these
    commands run without the variables that a deploy needs (see load_plan).
    """
    from pipeline.planning import load_plan, resolve_pipeline_path

    path = resolve_pipeline_path(config.option("file"), config.invocation_dir, "-f FILE")
    return load_plan(path, config, tolerate=tolerate)


def state_location(config: Config, environment: str | None = None) -> StateLocation:
    """Find the state store for a command that does not otherwise need the pipeline.

    ``--state`` and ``SHIPLINE_STATE`` need no pipeline file; without them, the
    pipeline file is loaded for its ``state:`` section and its folder. Then
    ``environment``, when given, must be defined in the file or recorded in the store
    (an environment since removed from the file), else UsageError catches a typo.
    """
    from pipeline.state import open_store
    from pipeline.staterun import locate

    if config.option("state") is not None or os.environ.get(STATE_VARIABLE, "").strip():
        return locate(config.invocation_dir, None, config)
    plan = load_for_state(config, outside_state).plan
    location = locate(Path(plan.file).parent, dict(plan.state), config)
    if environment is None or environment in plan.environments:
        return location

    if missing_store(location) is None:
        with open_store(location, config.clock) as store:
            if environment in store.environments():
                return location
    check_environment(plan, environment)
    return location


def check_environment(plan: Plan, name: str) -> None:
    """Raise UsageError unless ``plan`` defines the environment ``name``."""
    if name not in plan.environments:
        defined = ", ".join(sorted(plan.environments)) or "none"
        raise UsageError(f"environment '{name}' is not defined in {plan.file} "
                         f"(defined: {defined})")


def missing_store(location: StateLocation) -> str | None:
    """Return "there is no state store at PATH" when the location is an SQLite file that
    does not exist, else None.

    Commands that only read (history, status, lock) check this first, because opening
    the store would create the file and its folders, at a mistyped path too.
    """
    if location.backend != "sqlite" or location.path is None:
        return None
    if os.path.lexists(location.path):
        return None
    return f"there is no state store at {location.path}"


def open_state_store(config: Config) -> StateStore:
    """Open the state store that ``--state``, ``SHIPLINE_STATE`` or the pipeline names."""
    from pipeline.state import open_store

    return open_store(state_location(config), config.clock)


def format_moment(moment: datetime) -> str:
    """Format a store time for tables: UTC to the second, ``2027-01-15 08:00:00``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")
