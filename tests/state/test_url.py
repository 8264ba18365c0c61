"""Choosing the state backend from --state, SHIPLINE_STATE and the state: section."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state import StateError, open_store
from pipeline.state.sqlite import SqliteStore
from pipeline.state.url import (
    StateLocation,
    location_from_settings,
    parse_state_url,
    redact_url,
    resolve_location,
)

BASE = Path("/srv/ci")
PIPELINE_DIR = Path("/repo")


@pytest.mark.parametrize(("value", "expected"), [
    ("state.db", StateLocation("sqlite", path=BASE / "state.db")),
    ("/var/lib/shipline/state.db",
     StateLocation("sqlite", path=Path("/var/lib/shipline/state.db"))),
    ("sqlite:cache/state.db", StateLocation("sqlite", path=BASE / "cache/state.db")),
    ("sqlite:///abs/state.db", StateLocation("sqlite", path=Path("/abs/state.db"))),
    ("SQLite:state.db", StateLocation("sqlite", path=BASE / "state.db")),
    ("postgresql://deploy@db.internal/shipline",
     StateLocation("postgresql", url="postgresql://deploy@db.internal/shipline")),
    ("postgres://db.internal/shipline",
     StateLocation("postgresql", url="postgres://db.internal/shipline")),
    ("  state.db  ", StateLocation("sqlite", path=BASE / "state.db")),
])
def test_url_parse_accepted_forms(value: str, expected: StateLocation):
    assert parse_state_url(value, BASE, "--state") == expected


@pytest.mark.parametrize(("value", "message"), [
    ("", "--state is empty: give a file path or a postgresql:// URL"),
    ("mysql://root:pw@db/x",
     "--state: unsupported state URL scheme 'mysql' in mysql://root:***@db/x: use a file "
     "path, sqlite:PATH or postgresql://USER@HOST/DATABASE"),
    ("sqlite://host/state.db",
     "--state: 'sqlite://host/state.db' names a host, which SQLite cannot use: write "
     "sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH"),
    ("sqlite:", "--state: 'sqlite:' has no file path: write sqlite:PATH"),
])
def test_url_parse_rejects(value: str, message: str):
    with pytest.raises(StateError) as raised:
        parse_state_url(value, BASE, "--state")

    assert str(raised.value) == message
    assert raised.value.exit_code == ExitCode.INVALID


def test_url_redact_hides_only_password():
    assert redact_url("postgresql://deploy:s3cret@db:5432/x?sslmode=require") == (
        "postgresql://deploy:***@db:5432/x?sslmode=require"
    )
    assert redact_url("postgresql://deploy@db/x") == "postgresql://deploy@db/x"


def test_url_describe_hides_password():
    location = StateLocation("postgresql", url="postgresql://u:pw@db/x")

    assert location.describe() == "postgresql://u:***@db/x"
    assert StateLocation("sqlite", path=Path("/a/b.db")).describe() == "/a/b.db"


def test_url_settings_default_beside_pipeline():
    assert location_from_settings({}, PIPELINE_DIR) == StateLocation(
        "sqlite", path=PIPELINE_DIR / ".shipline/state.db"
    )
    assert location_from_settings({"backend": "sqlite"}, PIPELINE_DIR) == StateLocation(
        "sqlite", path=PIPELINE_DIR / ".shipline/state.db"
    )


def test_url_settings_path_relative_to_pipeline():
    location = location_from_settings({"path": "ci-cache/state.db"}, PIPELINE_DIR)

    assert location == StateLocation("sqlite", path=PIPELINE_DIR / "ci-cache/state.db")


def test_url_settings_postgresql():
    location = location_from_settings(
        {"backend": "postgresql", "url": "postgresql://deploy@db/x"}, PIPELINE_DIR
    )

    assert location == StateLocation("postgresql", url="postgresql://deploy@db/x")


@pytest.mark.parametrize(("settings", "message"), [
    ({"backend": "postgresql"},
     "state.url is missing: the postgresql backend needs a postgresql://USER@HOST/DATABASE "
     "URL"),
    ({"backend": "postgresql", "url": "postgresql://db/x", "path": "a.db"},
     "state.path is for the sqlite backend: remove it or set backend: sqlite"),
    ({"url": "postgresql://db/x"},
     "state.url is for the postgresql backend: set backend: postgresql, or use state.path "
     "for an SQLite file"),
    ({"backend": "postgresql", "url": "ftp://db/x"},
     "state.url: unsupported state URL scheme 'ftp' in ftp://db/x: use a file path, "
     "sqlite:PATH or postgresql://USER@HOST/DATABASE"),
])
def test_url_settings_rejects(settings: dict[str, object], message: str):
    with pytest.raises(StateError) as raised:
        location_from_settings(settings, PIPELINE_DIR)

    assert str(raised.value) == message


def resolve(option: str | None = None, variable: str | None = None,
            settings: dict[str, object] | None = None) -> StateLocation:
    environ = {} if variable is None else {"SHIPLINE_STATE": variable}
    return resolve_location(option=option, environ=environ, settings=settings,
                            pipeline_dir=PIPELINE_DIR, cwd=BASE)


def test_url_resolve_order():
    settings: dict[str, object] = {"path": "from-file.db"}

    assert resolve("opt.db", "var.db", settings).path == BASE / "opt.db"
    assert resolve(None, "var.db", settings).path == BASE / "var.db"
    assert resolve(None, None, settings).path == PIPELINE_DIR / "from-file.db"
    assert resolve(None, None, None).path == PIPELINE_DIR / ".shipline/state.db"


def test_url_resolve_blank_variable_ignored():
    assert resolve(None, "  ", None).path == PIPELINE_DIR / ".shipline/state.db"


def test_url_resolve_empty_option_rejected():
    with pytest.raises(StateError, match=r"^--state is empty"):
        resolve("", "var.db", None)


def test_url_open_store_default_creates_file(tmp_path: Path):
    location = resolve_location(option=None, environ={}, settings=None,
                                pipeline_dir=tmp_path, cwd=tmp_path)

    with open_store(location, FakeClock()) as store:
        assert isinstance(store, SqliteStore)

    assert (tmp_path / ".shipline" / "state.db").is_file()


def test_url_open_store_postgresql(postgres_server):
    location = StateLocation("postgresql", url=postgres_server.new_schema())

    with open_store(location, FakeClock()) as store:
        assert store.history() == []
