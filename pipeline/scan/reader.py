"""Reading a report file as JSON and pulling typed fields out of it.

Reports come from other tools and may be cut short, hand-edited or of another format
than expected. Every problem is a :class:`ReportError` that names the file and, for
a value of the wrong type, its JSON path (``Results[3].Vulnerabilities``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ShiplineError

#: The largest report read, in bytes. The whole document is parsed in memory:
#: bench/scan.py measured a peak RSS of 3.4 to 4.4 times the file size (185 MiB for a
#: 50 MB Trivy report, 219 MiB for Grype, 689 MiB for 200 MB of Trivy). So this limit
#: keeps one report near 1 GiB.
MAX_REPORT_BYTES = 256 * 1000 * 1000


class ReportError(ShiplineError):
    """A report that cannot be read, parsed or understood; the message names the file.

    Raised inside a scan step, it fails the step, which blocks the run (exit 3) when
    nothing has been deployed yet. A report that cannot be read never passes.
    """


_TYPE_NAMES = {
    dict: "an object", list: "a list", str: "a string", bool: "a boolean",
    int: "a number", float: "a number", type(None): "null",
}


def describe_type(value: object) -> str:
    """Name the JSON type of ``value`` for messages, such as "a list" or "null"."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def load_json(path: Path, display: str) -> Any:
    """Read and parse the JSON file at ``path``; ``display`` names it in errors.

    Raises :class:`ReportError` when the file is missing or unreadable, larger than
    :data:`MAX_REPORT_BYTES`, not UTF-8, or not valid JSON; a syntax error gives the
    line and column.
    """
    text = _read_text(path, display)
    if not text.strip():
        raise ReportError(f"{display}: the report is empty; check that the scanner wrote it")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{display}:{exc.lineno}:{exc.colno}: not valid JSON: {_syntax_message(exc)}"
        ) from exc
    except RecursionError:
        raise ReportError(f"{display}: not a usable JSON report: nested too deeply") from None


def _syntax_message(error: json.JSONDecodeError) -> str:
    """Word a JSON syntax error as a whole sentence, and say when the file ends early.

    Some messages of the ``json`` module end with "at" because ``str(error)`` adds
    the position after them ("Unterminated string starting at"), so the position is
    added here too. A string that is never closed, or an error at the end of the
    text, means the file was cut short, as when a scanner is stopped while writing.
    """
    message = error.msg
    if message.endswith(" at"):
        message += f" line {error.lineno} column {error.colno}"

    cut_short = message.startswith("Unterminated string") or not error.doc[error.pos:].strip()
    if cut_short:
        message += "; the report ends early, so the scanner may not have finished writing it"
    return message


def _read_text(path: Path, display: str) -> str:
    try:
        size = path.stat().st_size
        data = b"" if size > MAX_REPORT_BYTES else path.read_bytes()
    except FileNotFoundError:
        raise ReportError(f"{display}: report file not found") from None
    except OSError as exc:
        raise ReportError(f"{display}: cannot read the report: {exc.strerror}") from exc

    if size > MAX_REPORT_BYTES:
        raise ReportError(
            f"{display}: the report is {size / 1e6:.0f} MB, larger than the "
            f"{MAX_REPORT_BYTES / 1e6:.0f} MB shipline reads; split the scan or limit "
            "what the scanner reports (for example by severity)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"{display}: not a JSON report: byte {exc.start} is not valid UTF-8"
        ) from exc


@dataclass(frozen=True)
class Fields:
    """Typed access to the values of one report, with errors that name the file and path.

    A missing key and a JSON ``null`` both read as empty (an empty list, mapping or
    string), because scanners write either for "none". A value of another type is an
    error, never silently skipped.
    """

    #: The report's name in messages: the path as the step gave it.
    file: str

    def error(self, where: str, message: str) -> ReportError:
        return ReportError(f"{self.file}: {where}: {message}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        """Return ``value`` as an object; ``null`` reads as an empty one."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(where, f"expected an object, found {describe_type(value)}")
        return value

    def objects(
        self, parent: Mapping[str, Any], key: str, where: str
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """Return the objects in the list ``parent[key]`` with their JSON paths; ``null``
        items are left out."""
        path = f"{where}.{key}" if where else key
        items = parent.get(key)
        if items is None:
            return []
        if not isinstance(items, list):
            raise self.error(path, f"expected a list, found {describe_type(items)}")
        return [
            (f"{path}[{i}]", self.mapping(item, f"{path}[{i}]"))
            for i, item in enumerate(items) if item is not None
        ]

    def strings(self, parent: Mapping[str, Any], key: str, where: str) -> list[str]:
        """Return the list of strings ``parent[key]``; ``null`` items are left out."""
        path = f"{where}.{key}" if where else key
        items = parent.get(key)
        if items is None:
            return []
        if not isinstance(items, list):
            raise self.error(path, f"expected a list, found {describe_type(items)}")
        return [self._scalar_text(item, f"{path}[{i}]") for i, item in enumerate(items)
                if item is not None]

    def text(self, parent: Mapping[str, Any], key: str, where: str) -> str:
        """Return ``parent[key]`` as text; numbers are converted, ``null`` reads as ``""``."""
        return self._scalar_text(parent.get(key), f"{where}.{key}" if where else key)

    def number(self, parent: Mapping[str, Any], key: str, where: str) -> float | None:
        """Return ``parent[key]`` as a number; a numeric string is accepted (SARIF
        ``security-severity`` is one). Missing, ``null`` and ``""`` read as ``None``."""
        value = parent.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        path = f"{where}.{key}" if where else key
        raise self.error(path, f"expected a number, found {json.dumps(value)[:40]}")

    def _scalar_text(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise self.error(path, f"expected a string, found {describe_type(value)}")
