"""Reading the entry points of installed distributions without importlib.metadata.

Importing importlib.metadata imports the email package, zipfile and csv, and reading a
distribution's name and version through it parses ``METADATA`` with the email parser.
With one plugin installed, that was 18 ms of every ``shipline`` start (see
docs/benchmarks.md), and most installations have no plugin at all. So
:func:`read_entry_points` reads the metadata folders on ``sys.path`` itself, the way
importlib.metadata of Python 3.10-3.13 finds them:

- A distribution is a ``*.dist-info`` or ``*.egg-info`` folder directly in a path
  entry. Its key is the part of the folder name before the first ``-``, lowercased,
  with runs of ``-``, ``_`` and ``.`` made one ``_``. The first distribution with a key
  hides every later one with the same key, whatever their entry points.
- ``entry_points.txt`` is read line by line, and each line is stripped. Blank lines and
  lines starting with ``#`` are skipped. ``[name]`` starts a section, and every other
  line is ``name = value``.
- The name and version shown for a plugin are the ``Name:`` and ``Version:`` headers
  of ``METADATA`` (``PKG-INFO`` in an ``.egg-info`` folder).

What it does not read itself, it leaves to importlib.metadata by returning None. That
covers a path entry that is a file (a zip archive) or an ``.egg`` folder, a file it
cannot read or decode, metadata without a name or version, and an entry point it cannot
parse. It also covers a ``sys.meta_path`` with a finder of distributions besides the
standard path finder.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

#: ``module``, ``module:attr`` or ``module:attr.attr``, with optional ``[extras]``.
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?(\[[^\]]*\]\s*)?$")


class Unreadable(Exception):
    """Raised inside this module for anything that importlib.metadata must read instead."""


@dataclass(frozen=True)
class EntryPoint:
    """One entry point of a group, and the distribution that declares it."""

    name: str
    value: str
    dist_name: str
    dist_version: str

    @property
    def origin(self) -> str:
        """Where the plugin comes from, for ``shipline plugins`` and error messages."""
        if not self.dist_name:
            return "entry point"
        return f"entry point of {self.dist_name} {self.dist_version}"

    def load(self) -> object:
        """Import the module and return the object the value names.

        Raises what the import raises, or AttributeError for a missing attribute.
        """
        match = _VALUE.match(self.value)
        if match is None:  # read_entry_points returns only values that match
            raise ValueError(f"entry point value {self.value!r} cannot be parsed")
        loaded: object = importlib.import_module(match["module"])
        for attr in (match["attr"] or "").split("."):
            if attr:
                loaded = getattr(loaded, attr)
        return loaded


def read_entry_points(
    group: str, paths: Sequence[object], finders: Sequence[object]
) -> list[EntryPoint] | None:
    """Return the entry points in ``group`` of the distributions found on ``paths``.

    ``paths`` is ``sys.path`` and ``finders`` is ``sys.meta_path``. The list is in the
    order of the paths, then of the folder listing, then of each ``entry_points.txt``.
    Returns None when importlib.metadata has to read them instead (see the module
    docstring).
    """
    from importlib.machinery import PathFinder

    for finder in finders:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            return None

    found: list[EntryPoint] = []
    seen: set[str] = set()
    try:
        for folder in _metadata_folders(paths):
            key = _distribution_key(os.path.basename(folder))
            if key in seen:
                continue
            seen.add(key)
            found.extend(_declared(folder, group))
    except Unreadable:
        return None
    return found


def _metadata_folders(paths: Sequence[object]) -> Iterator[str]:
    """Yield the ``*.dist-info`` and ``*.egg-info`` names in each path entry.

    An old ``.egg-info`` file is yielded too: it hides later distributions with the
    same key, as in importlib.metadata, and has no entry points. Raises Unreadable for
    a path entry this module does not read.
    """
    for path in paths:
        if not isinstance(path, str) or path.lower().endswith(".egg"):
            raise Unreadable(path)
        root = path or "."
        try:
            children = os.listdir(root)
        except FileNotFoundError:
            continue
        except OSError as exc:  # a zip archive, or a folder that cannot be listed
            raise Unreadable(path) from exc
        for child in children:
            if child.lower().endswith((".dist-info", ".egg-info")):
                yield os.path.join(root, child)


def _distribution_key(folder_name: str) -> str:
    stem = folder_name.lower().rpartition(".")[0]
    return re.sub(r"[-_.]+", "_", stem.partition("-")[0])


def _declared(folder: str, group: str) -> list[EntryPoint]:
    """Return the entry points of one metadata folder in ``group``."""
    pairs = [(name, value) for section, name, value in _entry_point_lines(folder)
             if section == group]
    if not pairs:
        return []
    dist_name, dist_version = _name_and_version(folder)
    entry_points = [EntryPoint(name, value, dist_name, dist_version) for name, value in pairs]
    if any(_VALUE.match(entry_point.value) is None for entry_point in entry_points):
        raise Unreadable(folder)
    return entry_points


def _entry_point_lines(folder: str) -> Iterator[tuple[str | None, str, str]]:
    """Yield (section, name, value) for each entry of the folder's ``entry_points.txt``."""
    text = _read_text(os.path.join(folder, "entry_points.txt"))
    if text is None:
        return
    section = None
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        name, equals, value = line.partition("=")
        if not equals:
            raise Unreadable(folder)
        yield section, name.strip(), value.strip()


def _name_and_version(folder: str) -> tuple[str, str]:
    """Read the ``Name:`` and ``Version:`` headers of the folder's core metadata."""
    metadata = "PKG-INFO" if folder.lower().endswith(".egg-info") else "METADATA"
    text = _read_text(os.path.join(folder, metadata)) or ""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, colon, value = line.partition(":")
        if colon and key.lower() in ("name", "version"):
            headers.setdefault(key.lower(), value.strip())
    if not headers.get("name") or not headers.get("version"):
        raise Unreadable(folder)
    return headers["name"], headers["version"]


def _read_text(path: str) -> str | None:
    """Return the file's text, None when it does not exist; Unreadable otherwise."""
    try:
        with open(path, encoding="utf-8") as opened:
            return opened.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(path) from exc
