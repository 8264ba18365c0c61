"""Recognizing the format of a report from its content, and reading it into findings.

The format is decided from the top-level keys that each tool always writes, never from
the file name, because CI jobs name reports freely:

- SARIF: an object with ``version`` ``2.1.0`` and a ``runs`` list (``$schema`` may also
  name SARIF).
- CycloneDX: an object with ``bomFormat: CycloneDX``.
- Grype: an object with a ``matches`` list, or whose ``descriptor.name`` is ``grype``.
- OSV-Scanner: an object with a ``results`` list, without ``runs``.
- Trivy: an object with ``SchemaVersion`` or ``Results``, or a bare list of objects
  with ``Target`` (Trivy before schema 2).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.scan import cyclonedx, grype, osv, sarif, trivy
from pipeline.scan.finding import Finding
from pipeline.scan.formats import FORMAT_TITLES
from pipeline.scan.reader import Fields, ReportError, load_json

#: Format name -> the module that reads it.
PARSERS: Mapping[str, ModuleType] = {
    module.FORMAT: module for module in (trivy, grype, sarif, osv, cyclonedx)
}


def detect_format(data: Any) -> str | None:
    """Return the format name of a parsed report, or None when none matches."""
    if isinstance(data, list):
        if data and all(isinstance(item, Mapping) and "Target" in item for item in data):
            return trivy.FORMAT
        return None
    if not isinstance(data, Mapping):
        return None

    checks: list[tuple[str, Callable[[Mapping[str, Any]], bool]]] = [
        (sarif.FORMAT, _is_sarif),
        (cyclonedx.FORMAT, lambda d: d.get("bomFormat") == "CycloneDX"),
        (grype.FORMAT, _is_grype),
        (osv.FORMAT, lambda d: isinstance(d.get("results"), list)),
        (trivy.FORMAT, lambda d: "SchemaVersion" in d or "Results" in d),
    ]
    for name, check in checks:
        if check(data):
            return name
    return None


def _is_grype(data: Mapping[str, Any]) -> bool:
    descriptor = data.get("descriptor")
    named = isinstance(descriptor, Mapping) and descriptor.get("name") == "grype"
    return named or isinstance(data.get("matches"), list)


def _is_sarif(data: Mapping[str, Any]) -> bool:
    if not isinstance(data.get("runs"), list):
        return False
    schema = data.get("$schema")
    return data.get("version") == "2.1.0" or (isinstance(schema, str) and "sarif" in schema)


def read_report(path: Path, display: str, expected: str | None = None) -> tuple[str, list[Finding]]:
    """Read the report at ``path`` and return its format name and findings.

    ``display`` names the file in messages. With ``expected`` (a key of
    :data:`PARSERS`), a report of another format is an error, so that a step meant for
    Trivy output does not silently read the wrong file. Raises :class:`ReportError`
    for a file that cannot be read, is not JSON, has no known format, or is malformed.
    """
    with _collector_paused():
        return _read(path, display, expected)


def _read(path: Path, display: str, expected: str | None) -> tuple[str, list[Finding]]:
    data = load_json(path, display)
    found = detect_format(data)
    if found is None:
        known = ", ".join(FORMAT_TITLES.values())
        raise ReportError(
            f"{display}: unknown report format: expected one of {known} "
            "(check that the scanner wrote JSON or SARIF)"
        )
    if expected is not None and found != expected:
        raise ReportError(
            f"{display}: expected a {FORMAT_TITLES[expected]} report, found "
            f"{FORMAT_TITLES[found]}; use 'uses: {found}' or 'uses: auto' for this file"
        )

    return found, PARSERS[found].parse(data, Fields(display))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a report is parsed.

    Parsing allocates hundreds of thousands of containers, and each burst of
    allocations starts a collection that walks the ones already made again. With the
    collector running, bench/scan.py measured 1.4 times the CPU time for a 50 MB report
    and 1.6 times for 200 MB. Parsed JSON has no reference cycles, so the collector
    would free nothing. The pause is process-wide: other threads get their cycles
    collected after the report is read.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
