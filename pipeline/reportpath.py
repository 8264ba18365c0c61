"""Checks of report paths given on the command line, made before a run changes anything."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UsageError


def check_report_path(path: Path, option: str) -> None:
    """Reject a report path that cannot be written, naming ``option`` (``--junitxml``).

    Missing folders are fine: the reporters create them when they write.
    """
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: '{parent}' is not a directory")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: the folder '{parent}' is not writable")
