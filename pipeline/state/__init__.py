"""The state store: deployment history, the journal of each change, rollbacks and locks.

Importing this package is cheap: each name below loads its module on first use, so
that the commands, which every start of shipline imports, pay nothing for it. The
backends, and psycopg with them, load only when :func:`open_store` opens one. A run
uses it like this::

    location = resolve_location(option=None, environ=os.environ, settings=plan.state,
                                pipeline_dir=path.parent, cwd=Path.cwd())
    with open_store(location, clock) as store:
        lock = wait_for_lock(store, "production", owner, lease=DEFAULT_LEASE, wait=0,
                             clock=clock)
        deployment = store.start_deployment(pipeline="shop", environment="production", ...)
        entry = store.append_journal(deployment.id, stage="production", step="deploy",
                                     operation="deploy", instances=["web-1"], version="1.4.2")
        ...  # change web-1
        store.complete_journal(deployment.id, entry.seq)
        store.finish_deployment(deployment.id, DeploymentOutcome.SUCCEEDED)
        store.release_lock(lock)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.state.errors import (
        LockHeld,
        LockLost,
        RecordNotFound,
        StateBusyError,
        StateConnectionError,
        StateCorruptError,
        StateError,
        StateSchemaError,
    )
    from pipeline.state.locks import (
        DEFAULT_LEASE,
        Heartbeat,
        LockWaitCancelled,
        default_owner,
        wait_for_lock,
    )
    from pipeline.state.records import (
        Deployment,
        DeploymentOutcome,
        ForcedRelease,
        JournalAppend,
        JournalEntry,
        Lock,
        Rollback,
        RollbackOutcome,
    )
    from pipeline.state.store import StateStore
    from pipeline.state.url import (
        DEFAULT_SQLITE_PATH,
        StateLocation,
        open_store,
        resolve_location,
    )

#: The environment variable that selects the state store when ``--state`` is not given.
STATE_VARIABLE = "SHIPLINE_STATE"

#: The module of each public name, imported when the name is first read.
_MODULES = {
    "DEFAULT_LEASE": "pipeline.state.locks",
    "DEFAULT_SQLITE_PATH": "pipeline.state.url",
    "Deployment": "pipeline.state.records",
    "DeploymentOutcome": "pipeline.state.records",
    "ForcedRelease": "pipeline.state.records",
    "Heartbeat": "pipeline.state.locks",
    "JournalAppend": "pipeline.state.records",
    "JournalEntry": "pipeline.state.records",
    "Lock": "pipeline.state.records",
    "LockHeld": "pipeline.state.errors",
    "LockLost": "pipeline.state.errors",
    "LockWaitCancelled": "pipeline.state.locks",
    "RecordNotFound": "pipeline.state.errors",
    "Rollback": "pipeline.state.records",
    "RollbackOutcome": "pipeline.state.records",
    "StateBusyError": "pipeline.state.errors",
    "StateConnectionError": "pipeline.state.errors",
    "StateCorruptError": "pipeline.state.errors",
    "StateError": "pipeline.state.errors",
    "StateLocation": "pipeline.state.url",
    "StateSchemaError": "pipeline.state.errors",
    "StateStore": "pipeline.state.store",
    "default_owner": "pipeline.state.locks",
    "open_store": "pipeline.state.url",
    "resolve_location": "pipeline.state.url",
    "wait_for_lock": "pipeline.state.locks",
}

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_SQLITE_PATH",
    "STATE_VARIABLE",
    "Deployment",
    "DeploymentOutcome",
    "ForcedRelease",
    "Heartbeat",
    "JournalAppend",
    "JournalEntry",
    "Lock",
    "LockHeld",
    "LockLost",
    "LockWaitCancelled",
    "RecordNotFound",
    "Rollback",
    "RollbackOutcome",
    "StateBusyError",
    "StateConnectionError",
    "StateCorruptError",
    "StateError",
    "StateLocation",
    "StateSchemaError",
    "StateStore",
    "default_owner",
    "open_store",
    "resolve_location",
    "wait_for_lock",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.state' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
