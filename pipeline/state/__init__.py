"""The state store: deployment history, the journal of each change, rollbacks and locks.

Importing this package is cheap: the backends, and psycopg with them, load only when
:func:`open_store` opens one. A run uses it like this::

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
    JournalEntry,
    Lock,
    Rollback,
    RollbackOutcome,
)
from pipeline.state.store import StateStore
from pipeline.state.url import (
    DEFAULT_SQLITE_PATH,
    STATE_VARIABLE,
    StateLocation,
    open_store,
    resolve_location,
)

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_SQLITE_PATH",
    "STATE_VARIABLE",
    "Deployment",
    "DeploymentOutcome",
    "ForcedRelease",
    "Heartbeat",
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
