"""The state store written once in SQL, for every backend that speaks it.

:class:`SqlStore` implements :class:`~pipeline.state.store.StateStore`: the record
queries come from :mod:`pipeline.state.sqlhistory`, the locks from
:mod:`pipeline.state.sqllocks`, and transactions and migrations from
:mod:`pipeline.state.sqlbase`. A backend subclasses it and supplies the primitives that
SqlBase declares. SQL uses ``?`` placeholders and only syntax that SQLite 3.35+ and
PostgreSQL 12+ share.

A write transaction is exclusive for the whole database in SQLite, and per ``key``
(an environment, or the schema) in PostgreSQL.
"""

from __future__ import annotations

from pipeline.state.sqlbase import Cursor, SqlBase
from pipeline.state.sqlhistory import SqlHistory
from pipeline.state.sqllocks import SqlLocks

__all__ = ["Cursor", "SqlBase", "SqlStore"]


class SqlStore(SqlHistory, SqlLocks):
    """A StateStore over a DB-API connection. Subclasses supply the primitives."""
