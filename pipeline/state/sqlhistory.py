"""Deployments, their journal and rollbacks, in SQL that SQLite and PostgreSQL share."""

# S608 flags every f-string that builds SQL. Here only the constant column lists below
# are put into statements, and every value goes in as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.state.errors import RecordNotFound
from pipeline.state.records import (
    Deployment,
    DeploymentOutcome,
    DetailValue,
    JournalAppend,
    JournalEntry,
    Rollback,
    RollbackOutcome,
)
from pipeline.state.sqlbase import SqlBase

logger = logging.getLogger("shipline")

_DEPLOYMENT_COLUMNS = (
    "id, pipeline, environment, version, previous_version, strategy, actor, job_url, "
    "commit_sha, started, finished, outcome"
)
_JOURNAL_COLUMNS = (
    "deployment_id, seq, stage, step, operation, instances, version, time, done, details"
)
_ROLLBACK_COLUMNS = (
    "id, environment, deployment_id, from_version, to_version, reason, actor, job_url, "
    "fast, started, finished, outcome"
)


class SqlHistory(SqlBase):
    """The deployment, journal and rollback methods of the StateStore protocol."""

    # -- deployments ----------------------------------------------------------------------

    def start_deployment(
        self,
        *,
        pipeline: str,
        environment: str,
        version: str,
        previous_version: str | None,
        strategy: str,
        actor: str | None = None,
        job_url: str | None = None,
        commit: str | None = None,
    ) -> Deployment:
        deployment = Deployment(
            id=uuid.uuid4().hex, pipeline=pipeline, environment=environment, version=version,
            previous_version=previous_version, strategy=strategy, actor=actor,
            job_url=job_url, commit=commit, started=self._now(),
        )
        with self._transaction(write=True, key=environment):
            self._execute(
                f"INSERT INTO deployments ({_DEPLOYMENT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (deployment.id, pipeline, environment, version, previous_version, strategy,
                 actor, job_url, commit, self._encode_time(deployment.started)),
            )
        logger.info("deployment %s of %s to %s started", deployment.id, version, environment)
        return deployment

    def finish_deployment(self, deployment_id: str, outcome: DeploymentOutcome) -> Deployment:
        with self._transaction(write=True):
            cursor = self._execute(
                "UPDATE deployments SET finished = ?, outcome = ? WHERE id = ?",
                (self._encode_time(self._now()), outcome.value, deployment_id),
            )
            if cursor.rowcount == 0:
                raise self._deployment_not_found(deployment_id)
            deployment = self._select_deployment(deployment_id)
        logger.info("deployment %s finished: %s", deployment_id, outcome.value)
        return deployment

    def deployment(self, deployment_id: str) -> Deployment:
        with self._transaction():
            return self._select_deployment(deployment_id)

    def _select_deployment(self, deployment_id: str) -> Deployment:
        row = self._execute(
            f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?", (deployment_id,)
        ).fetchone()
        if row is None:
            raise self._deployment_not_found(deployment_id)
        return self._deployment_from_row(row)

    def unfinished_deployments(self, environment: str) -> list[Deployment]:
        with self._transaction():
            rows = self._execute(
                f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments "
                "WHERE environment = ? AND outcome IS NULL ORDER BY started, n",
                (environment,),
            ).fetchall()
        return [self._deployment_from_row(row) for row in rows]

    def last_successful_version(self, environment: str) -> str | None:
        with self._transaction():
            row = self._execute(
                "SELECT version FROM deployments WHERE environment = ? AND outcome = ? "
                "ORDER BY started DESC, n DESC LIMIT 1",
                (environment, DeploymentOutcome.SUCCEEDED.value),
            ).fetchone()
        return None if row is None else str(row[0])

    def history(self, environment: str | None = None, limit: int = 20) -> list[Deployment]:
        if environment is None:
            sql = (f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments "
                   "ORDER BY started DESC, n DESC LIMIT ?")
            params: tuple[object, ...] = (max(limit, 0),)
        else:
            sql = (f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments WHERE environment = ? "
                   "ORDER BY started DESC, n DESC LIMIT ?")
            params = (environment, max(limit, 0))
        with self._transaction():
            rows = self._execute(sql, params).fetchall()
        return [self._deployment_from_row(row) for row in rows]

    def environments(self) -> list[str]:
        with self._transaction():
            rows = self._execute(
                "SELECT DISTINCT environment FROM deployments "
                "UNION SELECT environment FROM locks ORDER BY 1"
            ).fetchall()
        return [str(row[0]) for row in rows]

    def _deployment_from_row(self, row: Sequence[Any]) -> Deployment:
        return Deployment(
            id=row[0], pipeline=row[1], environment=row[2], version=row[3],
            previous_version=row[4], strategy=row[5], actor=row[6], job_url=row[7],
            commit=row[8], started=self._decode_time(row[9]),
            finished=self._decode_optional_time(row[10]),
            outcome=None if row[11] is None else DeploymentOutcome(row[11]),
        )

    # -- journal ----------------------------------------------------------------------------

    def append_journal(
        self,
        deployment_id: str,
        *,
        stage: str,
        step: str,
        operation: str,
        instances: Sequence[str],
        version: str | None,
        details: Mapping[str, DetailValue] | None = None,
    ) -> JournalEntry:
        append = JournalAppend(deployment_id, stage, step, operation, tuple(instances),
                               version, dict(details or {}))
        return self.append_journal_many([append])[0]

    def append_journal_many(
        self, appends: Sequence[JournalAppend], done: Sequence[tuple[str, int]] = ()
    ) -> list[JournalEntry]:
        now = self._now()
        entries = []
        with self._transaction(write=True):
            for deployment_id, seq in done:
                if not self._set_done(deployment_id, seq):
                    logger.warning("journal entry %d of deployment %s is not in %s, so it "
                                   "cannot be marked done", seq, deployment_id, self.location)
            next_seq: dict[str, int] = {}
            for append in appends:
                seq = next_seq.get(append.deployment_id) or self._next_seq(append.deployment_id)
                next_seq[append.deployment_id] = seq + 1
                details = dict(append.details)
                self._execute(
                    f"INSERT INTO journal ({_JOURNAL_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                    (append.deployment_id, seq, append.stage, append.step, append.operation,
                     json.dumps(list(append.instances)), append.version,
                     self._encode_time(now), json.dumps(details, sort_keys=True)),
                )
                entries.append(JournalEntry(
                    append.deployment_id, seq, append.stage, append.step, append.operation,
                    append.instances, append.version, now, False, details,
                ))
        return entries

    def _next_seq(self, deployment_id: str) -> int:
        """Return the next ``seq`` of a deployment; raise RecordNotFound if it is unknown."""
        self._select_deployment(deployment_id)
        row = self._execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE deployment_id = ?",
            (deployment_id,),
        ).fetchone()
        return int(row[0])

    def complete_journal(self, deployment_id: str, seq: int) -> JournalEntry:
        with self._transaction(write=True):
            self._mark_done(deployment_id, seq)
            row = self._execute(
                f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE deployment_id = ? AND seq = ?",
                (deployment_id, seq),
            ).fetchone()
        return self._journal_from_row(row)

    def complete_journal_many(self, keys: Sequence[tuple[str, int]]) -> None:
        with self._transaction(write=True):
            for deployment_id, seq in keys:
                self._mark_done(deployment_id, seq)

    def _mark_done(self, deployment_id: str, seq: int) -> None:
        if not self._set_done(deployment_id, seq):
            raise RecordNotFound(
                f"no journal entry {seq} of deployment {deployment_id} in {self.location}"
            )

    def _set_done(self, deployment_id: str, seq: int) -> bool:
        """Mark one entry done; return False if there is no such entry."""
        cursor = self._execute(
            "UPDATE journal SET done = 1 WHERE deployment_id = ? AND seq = ?",
            (deployment_id, seq),
        )
        return bool(cursor.rowcount)

    def journal(self, deployment_id: str) -> list[JournalEntry]:
        with self._transaction():
            rows = self._execute(
                f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE deployment_id = ? ORDER BY seq",
                (deployment_id,),
            ).fetchall()
        return [self._journal_from_row(row) for row in rows]

    def _journal_from_row(self, row: Sequence[Any]) -> JournalEntry:
        return JournalEntry(
            deployment_id=row[0], seq=int(row[1]), stage=row[2], step=row[3],
            operation=row[4], instances=tuple(json.loads(row[5])), version=row[6],
            time=self._decode_time(row[7]), done=bool(row[8]), details=json.loads(row[9]),
        )

    # -- rollbacks --------------------------------------------------------------------------

    def start_rollback(
        self,
        *,
        environment: str,
        to_version: str,
        from_version: str | None,
        reason: str,
        deployment_id: str | None = None,
        actor: str | None = None,
        job_url: str | None = None,
        fast: bool = False,
    ) -> Rollback:
        rollback = Rollback(
            id=uuid.uuid4().hex, environment=environment, deployment_id=deployment_id,
            from_version=from_version, to_version=to_version, reason=reason, actor=actor,
            job_url=job_url, fast=fast, started=self._now(),
        )
        with self._transaction(write=True, key=environment):
            if deployment_id is not None:
                self._select_deployment(deployment_id)
            self._execute(
                f"INSERT INTO rollbacks ({_ROLLBACK_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (rollback.id, environment, deployment_id, from_version, to_version, reason,
                 actor, job_url, int(fast), self._encode_time(rollback.started)),
            )
        logger.info("rollback %s of %s to %s started: %s",
                    rollback.id, environment, to_version, reason)
        return rollback

    def finish_rollback(self, rollback_id: str, outcome: RollbackOutcome) -> Rollback:
        with self._transaction(write=True):
            cursor = self._execute(
                "UPDATE rollbacks SET finished = ?, outcome = ? WHERE id = ?",
                (self._encode_time(self._now()), outcome.value, rollback_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"no rollback with id {rollback_id} in {self.location}")
            row = self._execute(
                f"SELECT {_ROLLBACK_COLUMNS} FROM rollbacks WHERE id = ?", (rollback_id,)
            ).fetchone()
        logger.info("rollback %s finished: %s", rollback_id, outcome.value)
        return self._rollback_from_row(row)

    def rollbacks(self, environment: str, limit: int = 20) -> list[Rollback]:
        with self._transaction():
            rows = self._execute(
                f"SELECT {_ROLLBACK_COLUMNS} FROM rollbacks WHERE environment = ? "
                "ORDER BY started DESC, n DESC LIMIT ?",
                (environment, max(limit, 0)),
            ).fetchall()
        return [self._rollback_from_row(row) for row in rows]

    def _rollback_from_row(self, row: Sequence[Any]) -> Rollback:
        return Rollback(
            id=row[0], environment=row[1], deployment_id=row[2], from_version=row[3],
            to_version=row[4], reason=row[5], actor=row[6], job_url=row[7],
            fast=bool(row[8]), started=self._decode_time(row[9]),
            finished=self._decode_optional_time(row[10]),
            outcome=None if row[11] is None else RollbackOutcome(row[11]),
        )

    def _deployment_not_found(self, deployment_id: str) -> RecordNotFound:
        return RecordNotFound(f"no deployment with id {deployment_id} in {self.location}")
