"""Shared fixtures. The ``shipline_cli`` and ``fake_clock`` fixtures come from
:mod:`pipeline.testing`, the pytest plugin that ships with shipline."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

#: The session fixture ``prometheus``: a real Prometheus server on loopback.
pytest_plugins = ["helpers.prometheus"]


@pytest.fixture(scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the session, so that tests do not write the user's cache."""
    return tmp_path_factory.mktemp("shipline-cache")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, _cache_dir: Path) -> None:
    """Keep CI variables of the machine running the suite out of every test."""
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "NO_COLOR", "SHIPLINE_STATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHIPLINE_CACHE_DIR", str(_cache_dir))


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[..., Path]:
    """Write dedented YAML text to ``tmp_path/NAME`` and return the path."""

    def write(text: str, name: str = "shipline.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
