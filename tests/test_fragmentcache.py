"""Tests of pipeline.fragmentcache: plugin schema fragments checked once, then trusted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline import fragmentcache
from pipeline.errors import PluginError
from pipeline.schema import StepSchema, build_schema

PLUGIN = textwrap.dedent("""\
    import pipeline
    from pipeline import StepSchema

    @pipeline.hookimpl
    def shipline_step_schemas():
        return [StepSchema(kind="gate", type="cached", schema=FRAGMENT)]

    @pipeline.hookimpl
    def shipline_run_gate(step, context):
        return None
    """)

PIPELINE = textwrap.dedent("""\
    version: 1
    name: shop
    stages:
      - name: checks
        steps:
          - gate: {uses: cached, threshold: 3}
    """)


def fragment(**extra: object) -> dict[str, object]:
    return {"properties": {"threshold": {"type": "integer"}}, **extra}


def validate_imports_jsonschema(folder: Path, cache: Path) -> bool:
    """Run ``shipline validate`` with the plugin in a new process; tell whether it
    imported jsonschema."""
    script = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "code = main(['validate', '-q', '-p', 'cachedplugin'])\n"
        "print(code, 'jsonschema' in sys.modules)\n"
    )
    env = {**os.environ, "SHIPLINE_CACHE_DIR": str(cache), "PYTHONPATH": str(folder),
           "SHIPLINE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=60)
    code, imported = result.stdout.split()
    assert code == "0", result.stdout + result.stderr
    return imported == "True"


def test_fragment_checked_once_then_trusted(tmp_path: Path) -> None:
    (tmp_path / "cachedplugin.py").write_text(f"FRAGMENT = {fragment()!r}\n" + PLUGIN)
    (tmp_path / "shipline.yml").write_text(PIPELINE, encoding="utf-8")
    cache = tmp_path / "cache"

    first = validate_imports_jsonschema(tmp_path, cache)
    second = validate_imports_jsonschema(tmp_path, cache)

    assert first is True
    assert second is False
    assert len((cache / "checked-fragments").read_text().split()) == 1


def test_changed_fragment_checked_again() -> None:
    fragmentcache.remember(fragmentcache.fingerprint(fragment()))

    key = fragmentcache.fingerprint(fragment(description="changed"))

    assert not fragmentcache.is_checked(key)


def test_invalid_fragment_never_recorded(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPLINE_CACHE_DIR", str(tmp_path / "cache"))
    bad = StepSchema(kind="gate", type="bad", schema={"type": "strnig"}, plugin="bad-plugin")

    for _ in range(2):
        with pytest.raises(PluginError):
            build_schema([bad])

    assert not (tmp_path / "cache" / "checked-fragments").exists()


def test_unwritable_cache_still_checks(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SHIPLINE_CACHE_DIR", str(blocker / "cache"))
    good = StepSchema(kind="gate", type="good", schema=fragment(), plugin="good-plugin")

    build_schema([good])
    build_schema([good])

    assert blocker.read_text() == "not a folder"


def test_cache_dir_from_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SHIPLINE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert fragmentcache.cache_dir() == tmp_path / "shipline"
