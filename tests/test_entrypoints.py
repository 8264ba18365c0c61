"""Tests for pipeline.entrypoints: reading entry points as importlib.metadata does."""

from __future__ import annotations

import sys
import zipfile
from importlib.metadata import distributions, entry_points
from pathlib import Path

import pytest

from pipeline.entrypoints import EntryPoint, read_entry_points


def write_distribution(
    folder: Path, name: str, entry_points_text: str | None,
    metadata: str = "Metadata-Version: 2.1\nName: gate\nVersion: 1.0\n",
) -> Path:
    """Create the metadata folder ``name`` in ``folder`` with these two files."""
    info = folder / name
    info.mkdir(parents=True)
    if entry_points_text is not None:
        (info / "entry_points.txt").write_text(entry_points_text, encoding="utf-8")
    metadata_file = "PKG-INFO" if name.lower().endswith(".egg-info") else "METADATA"
    (info / metadata_file).write_text(metadata, encoding="utf-8")
    return info


def read(tmp_path: Path, group: str = "shipline") -> list[EntryPoint] | None:
    return read_entry_points(group, [str(tmp_path)], [])


def test_dist_info(tmp_path: Path) -> None:
    write_distribution(tmp_path, "gate-1.0.dist-info",
                       "[console_scripts]\ngate = gate:main\n\n"
                       "[shipline]\ngate = gate_module\nother = gate_module:plugins.other\n")
    assert read(tmp_path) == [
        EntryPoint("gate", "gate_module", "gate", "1.0"),
        EntryPoint("other", "gate_module:plugins.other", "gate", "1.0"),
    ]


def test_egg_info_reads_pkg_info(tmp_path: Path) -> None:
    write_distribution(tmp_path, "Gate.EGG-INFO", "[shipline]\ngate = gate_module\n",
                       metadata="Metadata-Version: 1.0\nName: Gate\nVersion: 0.3\n")
    assert read(tmp_path) == [EntryPoint("gate", "gate_module", "Gate", "0.3")]


def test_comments_blank_lines_spaces_and_extras(tmp_path: Path) -> None:
    write_distribution(tmp_path, "gate-1.0.dist-info",
                       "# generated\n\n  [shipline]  \n# gate = off\n"
                       "  gate   =   gate_module : plugin  [fast, small]\n")
    assert read(tmp_path) == [
        EntryPoint("gate", "gate_module : plugin  [fast, small]", "gate", "1.0"),
    ]


def test_other_groups_only(tmp_path: Path) -> None:
    write_distribution(tmp_path, "shipline-0.1.dist-info",
                       "[console_scripts]\nshipline = pipeline.cli:main\n\n"
                       "[pytest11]\nshipline = pipeline.testing\n")
    assert read(tmp_path) == []


def test_missing_file_and_egg_info_file(tmp_path: Path) -> None:
    write_distribution(tmp_path, "gate-1.0.dist-info", None)
    (tmp_path / "old.egg-info").write_text("Name: old\n", encoding="utf-8")
    assert read(tmp_path) == []


def test_missing_path(tmp_path: Path) -> None:
    assert read_entry_points("shipline", [str(tmp_path / "missing")], []) == []


def test_first_distribution_hides_same_key(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_distribution(first, "Gate.Plugin-2.0.dist-info", "[console_scripts]\ng = g:main\n")
    write_distribution(second, "gate_plugin-1.0.dist-info", "[shipline]\ngate = gate_module\n")
    write_distribution(second, "other-1.0.dist-info", "[shipline]\nother = other_module\n",
                       metadata="Name: other\nVersion: 1.0\n")
    found = read_entry_points("shipline", [str(first), str(second)], [])
    assert found == [EntryPoint("other", "other_module", "other", "1.0")]


@pytest.mark.parametrize(("entry_points_bytes", "metadata"), [
    (b"[shipline]\ngate = \xff\n", "Name: gate\nVersion: 1.0\n"),
    (b"[shipline]\ngate gate_module\n", "Name: gate\nVersion: 1.0\n"),
    (b"[shipline]\ngate = not a module!\n", "Name: gate\nVersion: 1.0\n"),
    (b"[shipline]\ngate = gate_module\n", "Metadata-Version: 2.1\nName: gate\n"),
    (b"[shipline]\ngate = gate_module\n", "Metadata-Version: 2.1\n\nName: gate\nVersion: 1\n"),
], ids=["undecodable", "no-equals", "bad-value", "no-version", "headers-after-body"])
def test_left_to_importlib_metadata(
    tmp_path: Path, entry_points_bytes: bytes, metadata: str
) -> None:
    info = write_distribution(tmp_path, "gate-1.0.dist-info", None, metadata=metadata)
    (info / "entry_points.txt").write_bytes(entry_points_bytes)
    assert read(tmp_path) is None


def test_zip_archive_left_to_importlib_metadata(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("gate-1.0.dist-info/entry_points.txt", "[shipline]\ngate = gate\n")
    assert read_entry_points("shipline", [str(archive)], []) is None


def test_egg_folder_left_to_importlib_metadata(tmp_path: Path) -> None:
    egg = tmp_path / "gate-1.0-py3.11.egg"
    write_distribution(egg, "EGG-INFO", "[shipline]\ngate = gate_module\n")
    assert read_entry_points("shipline", [str(egg)], []) is None


def test_other_distribution_finder_left_to_importlib_metadata(tmp_path: Path) -> None:
    class DistributionFinder:
        def find_distributions(self, context: object = None) -> list[object]:
            return []

    assert read_entry_points("shipline", [str(tmp_path)], [DistributionFinder()]) is None


def test_agrees_with_importlib_metadata_on_this_environment() -> None:
    """Every group that the installed distributions declare reads the same both ways."""
    groups = {entry_point.group for dist in distributions() for entry_point in dist.entry_points}
    assert "shipline" in groups
    for group in sorted(groups):
        found = read_entry_points(group, sys.path, sys.meta_path)
        assert found is not None, group
        expected = [(entry_point.name, entry_point.value, entry_point.dist.name,
                     entry_point.dist.version)
                    for entry_point in entry_points(group=group) if entry_point.dist]
        assert [(entry_point.name, entry_point.value, entry_point.dist_name,
                 entry_point.dist_version) for entry_point in found] == expected, group


def test_load_module_and_attribute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gate_entry_module.py").write_text(
        "class Plugins:\n    other = 'the other plugin'\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_point = EntryPoint("other", "gate_entry_module:Plugins.other [extra]", "gate", "1.0")
    assert entry_point.load() == "the other plugin"
    assert EntryPoint("module", "gate_entry_module", "gate", "1.0").load() is sys.modules[
        "gate_entry_module"]


def test_origin() -> None:
    assert EntryPoint("gate", "gate", "gate-plugin", "1.0").origin == (
        "entry point of gate-plugin 1.0")
    assert EntryPoint("gate", "gate", "", "").origin == "entry point"
