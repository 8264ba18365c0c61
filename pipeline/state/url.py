"""Choose the state backend from ``--state``, ``SHIPLINE_STATE`` or the ``state:`` section.

Accepted values of ``--state`` and ``SHIPLINE_STATE``:

``postgresql://USER@HOST/DB`` (or ``postgres://``)
    a PostgreSQL database, as a libpq connection URL. libpq's ``PG*`` variables and
    ``~/.pgpass`` fill in what the URL leaves out.
``sqlite:///ABSOLUTE/PATH``, ``sqlite:PATH`` or a plain ``PATH``
    an SQLite file. A relative path is relative to the working directory.

The ``state:`` section has ``backend`` (``sqlite`` or ``postgresql``), ``path`` for
sqlite (relative to the pipeline file's directory) and ``url`` for postgresql. The
first of ``--state``, ``SHIPLINE_STATE`` and ``state:`` that is set wins. With none,
the state lives in ``.shipline/state.db`` beside the pipeline file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.state import STATE_VARIABLE
from pipeline.state.errors import StateError
from pipeline.state.urlsecrets import redact_passwords, redact_url

if TYPE_CHECKING:
    from pipeline.clock import Clock
    from pipeline.state.store import StateStore

#: The path of the sqlite backend's file, relative to the pipeline file's directory.
DEFAULT_SQLITE_PATH = Path(".shipline") / "state.db"

_POSTGRESQL_SCHEMES = ("postgresql", "postgres")

Backend = Literal["sqlite", "postgresql"]

# The start of a libpq key/value connection string: a libpq keyword, then '='.
_LIBPQ_KEYWORD = re.compile(
    r"(host|hostaddr|port|dbname|user|password|passfile|sslmode|service|"
    r"connect_timeout|options|application_name|target_session_attrs)\s*=",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StateLocation:
    """A backend and where its data is: ``path`` for sqlite, ``url`` for postgresql."""

    backend: Backend
    path: Path | None = None
    url: str | None = None

    def describe(self) -> str:
        """Return the path, or the URL with any password replaced by ``***``, for messages."""
        if self.path is not None:
            return str(self.path)
        return redact_url(self.url or "")


def parse_state_url(value: str, base: Path, source: str) -> StateLocation:
    """Parse a ``--state`` or ``SHIPLINE_STATE`` value. Relative paths join ``base``.

    ``source`` names where the value came from, for the error message. Raises
    StateError for an empty value, a URL scheme other than sqlite and postgresql, or a
    ``sqlite://HOST/...`` URL, which names a host that SQLite cannot use. A libpq
    key/value string (``host=db password=...``) is rejected rather than taken as a
    file name, which would write the password into the file system.
    """
    text = value.strip()
    if not text:
        raise StateError(f"{source} is empty: give a file path or a postgresql:// URL")

    if _LIBPQ_KEYWORD.match(text):
        raise StateError(
            f"{source}: '{redact_passwords(text)}' is a libpq key/value string, not a URL: "
            f"write postgresql://USER@HOST[:PORT]/DATABASE, and keep the password in "
            f"PGPASSWORD or ~/.pgpass"
        )

    scheme, colon, rest = text.partition(":")
    if not colon or len(scheme) == 1 or "/" in scheme:
        # No scheme, or a Windows drive letter: a plain file path.
        return StateLocation("sqlite", path=_join(base, text))

    scheme = scheme.lower()
    if scheme in _POSTGRESQL_SCHEMES:
        return StateLocation("postgresql", url=text)
    if scheme == "sqlite":
        return StateLocation("sqlite", path=_join(base, _sqlite_path(rest, text, source)))
    raise StateError(
        f"{source}: unsupported state URL scheme '{scheme}' in {redact_url(text)}: "
        f"use a file path, sqlite:PATH or postgresql://USER@HOST/DATABASE"
    )


def _sqlite_path(rest: str, text: str, source: str) -> str:
    if not rest.startswith("//"):
        path = rest
    elif rest.startswith("///"):
        path = rest[2:]
    else:
        raise StateError(
            f"{source}: '{text}' names a host, which SQLite cannot use: "
            f"write sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH"
        )
    if not path:
        raise StateError(f"{source}: '{text}' has no file path: write sqlite:PATH")
    return path


def _join(base: Path, path: str) -> Path:
    return base / Path(path).expanduser()


def location_from_settings(settings: Mapping[str, object], pipeline_dir: Path,
                           source: str = "state") -> StateLocation:
    """Read the pipeline file's ``state:`` section, already validated by the schema.

    Raises StateError when the keys do not fit the backend: ``url`` missing for
    postgresql, or ``url`` given for sqlite, which takes ``path``.
    """
    backend = settings.get("backend", "sqlite")
    url = settings.get("url")
    path = settings.get("path")

    if backend == "postgresql":
        if not isinstance(url, str) or not url.strip():
            raise StateError(f"{source}.url is missing: the postgresql backend needs a "
                             f"postgresql://USER@HOST/DATABASE URL")
        if path is not None:
            raise StateError(f"{source}.path is for the sqlite backend: remove it or set "
                             f"backend: sqlite")
        return parse_state_url(url, pipeline_dir, f"{source}.url")

    if url is not None:
        raise StateError(f"{source}.url is for the postgresql backend: set backend: "
                         f"postgresql, or use {source}.path for an SQLite file")
    if path is None:
        return StateLocation("sqlite", path=pipeline_dir / DEFAULT_SQLITE_PATH)
    return StateLocation("sqlite", path=_join(pipeline_dir, str(path)))


def resolve_location(
    *,
    option: str | None,
    environ: Mapping[str, str],
    settings: Mapping[str, object] | None,
    pipeline_dir: Path,
    cwd: Path,
) -> StateLocation:
    """Pick the state location: ``--state`` (``option``), then ``SHIPLINE_STATE``, then
    the ``state:`` section, then the default file beside the pipeline file."""
    if option is not None:
        return parse_state_url(option, cwd, "--state")

    variable = environ.get(STATE_VARIABLE)
    if variable is not None and variable.strip():
        return parse_state_url(variable, cwd, STATE_VARIABLE)

    if settings:
        return location_from_settings(settings, pipeline_dir)
    return StateLocation("sqlite", path=pipeline_dir / DEFAULT_SQLITE_PATH)


def open_store(location: StateLocation, clock: Clock) -> StateStore:
    """Open the store at ``location``, creating or migrating its schema on first use.

    The backend module, and with it psycopg, is imported only here, so commands that
    need no state start fast. Raises StateError subclasses for a store that cannot be
    opened, read or migrated, and StateError when psycopg is not installed.
    """
    if location.backend == "postgresql":
        try:
            from pipeline.state.postgresql import PostgresStore
        except ModuleNotFoundError as error:
            if error.name != "psycopg" and not (error.name or "").startswith("psycopg."):
                raise
            raise StateError(
                f"cannot use state database {location.describe()}: the PostgreSQL "
                f"driver psycopg is not installed: run pip install 'shipline[postgresql]'"
            ) from None

        return PostgresStore(location.url or "", clock)

    from pipeline.state.sqlite import SqliteStore

    return SqliteStore(location.path or DEFAULT_SQLITE_PATH, clock)
