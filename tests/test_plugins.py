"""Tests for pipeline.plugins: built-in schema fragments, and loading entry points.

At start-up the schema fragments of built-in plugins are not checked against the
metaschema, so the first test here checks each of them instead.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline import hookimpl
from pipeline.config import Config
from pipeline.errors import PluginError
from pipeline.planning import collect_fragments, full_schema
from pipeline.plugins import BUILTIN_ORIGIN, PluginRegistry
from pipeline.schema import StepSchema


def builtin_config(*plugins: tuple[str, str, object]) -> Config:
    """Return a Config with every built-in plugin and ``plugins`` as (name, origin, plugin)."""
    registry = PluginRegistry()
    registry.load_builtins()
    for name, origin, plugin in plugins:
        registry.register(plugin, name=name, origin=origin)
    return Config(options=argparse.Namespace(), registry=registry)


def plain(value: Any) -> Any:
    """Copy ``value`` into dicts and lists, as build_schema does before it checks a fragment."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


BUILTIN_FRAGMENTS = collect_fragments(builtin_config())


class BrokenGate:
    """A plugin whose gate fragment is not a valid JSON Schema, labelled ``plugin``."""

    def __init__(self, plugin: str = "") -> None:
        self.plugin = plugin

    @hookimpl
    def shipline_step_schemas(self) -> list[StepSchema]:
        schema = {"properties": {"n": {"type": "integr"}}}
        return [StepSchema("gate", "broken", schema, plugin=self.plugin)]


BROKEN_MESSAGE = (
    "plugin 'broken' registers an invalid schema for the gate 'broken': "
    "'integr' is not valid under any of the given schemas (at $.properties.n.type)"
)


# -- built-in fragments ------------------------------------------------------------------


def test_builtin_fragments_kinds() -> None:
    kinds = {fragment.kind for fragment in BUILTIN_FRAGMENTS}
    assert kinds == {"deploy", "scan", "gate", "notify", "target", "analysis"}


@pytest.mark.parametrize(
    "fragment", BUILTIN_FRAGMENTS, ids=lambda fragment: f"{fragment.kind}-{fragment.type}"
)
def test_builtin_fragment_passes_metaschema(fragment: StepSchema) -> None:
    Draft202012Validator.check_schema(plain(fragment.schema))


def test_builtin_fragments_labelled_builtin() -> None:
    config = builtin_config()
    builtin = config.registry.builtin_names()
    assert {fragment.plugin for fragment in BUILTIN_FRAGMENTS} <= builtin


def test_full_schema_checks_other_plugins_fragments() -> None:
    config = builtin_config(("broken", "test", BrokenGate()))
    with pytest.raises(PluginError) as raised:
        full_schema(config)
    assert str(raised.value) == BROKEN_MESSAGE


def test_full_schema_skips_builtin_fragment_check() -> None:
    config = builtin_config(("broken", BUILTIN_ORIGIN, BrokenGate()))
    schema, owners = full_schema(config)
    assert owners[("gate", "broken")] == "broken"
    assert "broken" in schema["$defs"]["gate"]["properties"]["uses"]["enum"]


def test_full_schema_checks_fragment_named_after_builtin() -> None:
    config = builtin_config(("impostor", "test", BrokenGate(plugin="gates")))
    with pytest.raises(PluginError) as raised:
        full_schema(config)
    assert str(raised.value) == (
        "plugin 'gates' registers an invalid schema for the gate 'broken': "
        "'integr' is not valid under any of the given schemas (at $.properties.n.type)"
    )


# -- loading entry points ---------------------------------------------------------------


def write_metadata(folder: Path, name: str, entry_points_text: str | None) -> Path:
    """Create the metadata folder ``name`` in ``folder``, with this entry_points.txt."""
    metadata = folder / name
    metadata.mkdir(parents=True)
    if entry_points_text is not None:
        (metadata / "entry_points.txt").write_text(entry_points_text, encoding="utf-8")
    return metadata


def test_load_entry_points_registers_declared_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_metadata(tmp_path, "gate_plugin-1.0.dist-info", "[shipline]\nfound-gate = found_gate\n")
    (tmp_path / "gate_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gate-plugin\nVersion: 1.0\n", encoding="utf-8")
    (tmp_path / "found_gate.py").write_text("", encoding="utf-8")
    # Only tmp_path, so that plugins installed in the test environment stay out.
    monkeypatch.setattr(sys, "path", [str(tmp_path)])

    registry = PluginRegistry()
    registry.load_entry_points()
    assert [(info.name, info.origin) for info in registry.loaded] == [
        ("found-gate", "entry point of gate-plugin 1.0"),
    ]


def test_load_entry_points_zip_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("zipped_gate-2.0.dist-info/entry_points.txt",
                        "[shipline]\nzipped-gate = zipped_gate:plugin\n")
        opened.writestr("zipped_gate-2.0.dist-info/METADATA",
                        "Metadata-Version: 2.1\nName: zipped-gate\nVersion: 2.0\n")
        opened.writestr("zipped_gate.py", "class Plugin:\n    pass\n\nplugin = Plugin()\n")
    monkeypatch.setattr(sys, "path", [str(archive)])

    registry = PluginRegistry()
    registry.load_entry_points()
    assert [(info.name, info.origin) for info in registry.loaded] == [
        ("zipped-gate", "entry point of zipped-gate 2.0"),
    ]
    plugin = registry.pluginmanager.get_plugin("zipped-gate")
    assert type(plugin).__name__ == "Plugin"


def test_load_entry_points_skips_blocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_metadata(tmp_path, "gate_plugin-1.0.dist-info", "[shipline]\nblocked-gate = missing\n")
    (tmp_path / "gate_plugin-1.0.dist-info" / "METADATA").write_text(
        "Name: gate-plugin\nVersion: 1.0\n", encoding="utf-8")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])

    registry = PluginRegistry()
    registry.block(["blocked-gate"])
    registry.load_entry_points()
    assert registry.loaded == []


def test_load_entry_points_import_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_metadata(tmp_path, "gate_plugin-1.0.dist-info",
                   "[shipline]\nbroken-gate = no_such_gate_module:plugin\n")
    (tmp_path / "gate_plugin-1.0.dist-info" / "METADATA").write_text(
        "Name: gate-plugin\nVersion: 1.0\n", encoding="utf-8")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])

    with pytest.raises(PluginError) as raised:
        PluginRegistry().load_entry_points()
    assert str(raised.value) == (
        "plugin 'broken-gate' (entry point of gate-plugin 1.0) could not be loaded: "
        "ModuleNotFoundError: No module named 'no_such_gate_module'"
    )
