"""Checks of report paths given on the command line, made before a run changes anything."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UsageError


def check_report_path(path: Path, option: str) -> None:
    """Reject a report path that cannot be written, naming ``option`` (``--junitxml``).

    Missing folders are fine: the reporters create them when they write. The nearest
    existing folder is tested by creating and deleting a file in it, because
    ``os.access`` grants root every folder, even ones such as ``/proc`` where nobody
    can create a file. Raises UsageError (exit code 2) with the reason.
    """
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: '{parent}' is not a directory")

    import tempfile

    try:
        handle, name = tempfile.mkstemp(prefix=".shipline-write-test-", dir=parent)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create a file in the folder '{parent}' "
                         f"({exc.strerror or exc}); give a path in a writable folder") from exc
