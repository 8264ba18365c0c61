"""Crash reports: what an internal error leaves behind for a bug report."""

from __future__ import annotations

import platform
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from pipeline.state.urlsecrets import redact_passwords


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def write_crash_report(
    exc: BaseException, argv: Sequence[str], mask: Callable[[str], str] = str
) -> str:
    """Write versions, the command line and the traceback to a new file; return its path.

    The file is created with mode 0600 in the temporary directory. ``mask`` replaces
    the run's secrets in the text, and every password in a URL or in a ``password=``
    parameter is replaced too, because CI jobs often keep such files as artifacts.
    """
    lines = [
        "shipline crash report",
        f"shipline: {_version('shipline')}",
        f"python: {sys.version.split()[0]} ({platform.platform()})",
        f"pluggy: {_version('pluggy')}, pyyaml: {_version('pyyaml')}, "
        f"jsonschema: {_version('jsonschema')}",
        f"arguments: {' '.join(argv)}",
        "",
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    ]
    with tempfile.NamedTemporaryFile(
        "w", prefix="shipline-crash-", suffix=".log", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(redact_passwords(mask("\n".join(lines))))
    return handle.name
