"""Load a pipeline file into plain Python values and keep the source position of every node.

PyYAML supplies only the event stream (:mod:`pipeline.yamlevents`): the libyaml parser when
PyYAML was built with it, else its pure-Python parser. The composer in
:mod:`pipeline.yamlcompose` builds dicts, lists and scalars from those events with an
explicit stack, so nesting depth never reaches Python's recursion limit, and nothing is
ever constructed from a tag. :mod:`pipeline.yamlscalars` resolves scalars, and
:mod:`pipeline.sourcemap` keeps the positions.

Rules that differ from ``yaml.safe_load``:

* Plain scalars resolve by the YAML 1.2 core schema: ``on``, ``yes`` and ``no`` stay strings,
  and ``2026-01-01`` is a string, not a date. Quoted scalars are always strings.
* Only the standard tags ``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``, ``!!map``
  and ``!!seq`` (and the non-specific ``!``) are accepted. Any other tag is an error.
* A duplicate mapping key is an error. Mapping keys are always strings: a plain scalar key
  keeps its source text (``1: x`` has the key ``"1"``), and a mapping or list as key is an
  error.
* Merge keys (``<<: *defaults`` or ``<<: [*a, *b]``) are supported. Keys written in the
  mapping win over merged keys, and among merged mappings the first listed wins.
* Alias expansion is bounded by :data:`MAX_NODES` and nesting by :data:`MAX_DEPTH`.
  The expanded size of every anchor is known before an alias is expanded, so a
  "billion laughs" document fails after reading its events, without copying anything.
* Every alias expands into its own copy, so changing one occurrence in ``Document.data``
  never changes another.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.diagnostics import Diagnostic, Mark, caret_excerpt
from pipeline.errors import PipelineError, UsageError
from pipeline.sourcemap import SourceMap
from pipeline.yamlcompose import Composer, describe_type

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "Document",
    "SourceMap",
    "find_default_file",
    "load_file",
    "load_text",
]

logger = logging.getLogger("shipline")

#: Maximum number of nodes (scalars, mappings, sequences) in the document after every alias
#: is expanded; mapping keys count as nodes. A 2,000-stage pipeline with deploy, gate and
#: notify steps in every stage has about 94,000, so this leaves room for real files while
#: bounding the time and memory an alias-heavy file can take.
MAX_NODES = 500_000

#: Maximum nesting of mappings and sequences; the top-level mapping is level 1.
MAX_DEPTH = 100

DEFAULT_FILE_NAMES = ("shipline.yml", "shipline.yaml")

#: True to read events through libyaml; tests set it to False to run the pure-Python parser.
_USE_LIBYAML: bool = yaml.__with_libyaml__

# Line breaks as both PyYAML parsers count lines (YAML 1.1 includes NEL, LS and PS).
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Characters that YAML 1.1 does not allow in a stream. Both parsers reject the same set, but
# with a character offset instead of a line and column, so they are found here first.
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


@dataclass(frozen=True)
class Document:
    """A loaded pipeline file: its data as plain Python values and where each value came from."""

    #: Dicts, lists, str, int, float, bool and None only. Mapping keys are str.
    data: dict[str, Any]
    source: SourceMap
    #: The file as passed to :func:`load_file`, or to :func:`load_text` as ``path``.
    path: Path
    #: The file name used in marks: the path as the user passed it, relative paths included.
    display_name: str


def find_default_file(directory: Path, option: str | None = None) -> Path:
    """Return ``directory/shipline.yml`` or ``directory/shipline.yaml``, whichever exists.

    Raises UsageError when neither exists, and when both exist, because loading one of
    them silently could run a pipeline the user did not mean. ``option`` is how the
    command takes a pipeline file (``-f FILE``), or None for a positional argument.
    """
    how_one = "as the pipeline file argument" if option is None else f"with {option}"
    how_file = "as an argument" if option is None else f"with {option}"
    found = [directory / name for name in DEFAULT_FILE_NAMES if (directory / name).exists()]
    if len(found) > 1:
        raise UsageError(
            f"both {found[0]} and {found[1]} exist; "
            f"pass the one to use {how_one}"
        )
    if not found:
        raise UsageError(
            f"no pipeline file found: neither {directory / DEFAULT_FILE_NAMES[0]} "
            f"nor {directory / DEFAULT_FILE_NAMES[1]} exists; "
            f"create one or pass the pipeline file {how_file}"
        )
    return found[0]


#: The keys that messages about an empty file or a wrong top level name, per file kind.
_TOP_LEVEL_KEYS = {"pipeline": "'version', 'name' and 'stages'", "policy": "'version' and 'rules'"}


def load_file(path: Path, *, kind: str = "pipeline") -> Document:
    """Read and load the pipeline file at ``path``.

    Raises UsageError (one line, naming the file) when the file cannot be read, is not
    UTF-8 text, is empty, contains more than one YAML document or has no mapping at the top.
    Raises PipelineError with positioned diagnostics for YAML syntax errors and for
    content this loader rejects (see the module docstring).
    """
    display_name = str(path)
    raw = _read_bytes(path, display_name, kind)
    text = _decode(raw, display_name, kind)
    return load_text(text, display_name, path, kind=kind)


def load_text(
    text: str, display_name: str, path: Path | None = None, *, kind: str = "pipeline"
) -> Document:
    """Load pipeline YAML from ``text``, naming it ``display_name`` in marks and messages.

    ``path`` defaults to ``Path(display_name)``. A leading byte order mark is ignored.
    ``kind`` (``pipeline`` or ``policy``) selects the top-level keys that messages
    about an empty file or a top level that is not a mapping name.
    Raises the same errors as :func:`load_file`, except those about reading the file.
    """
    started = time.perf_counter()
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_BREAK.split(text)
    _check_printable(text, display_name, lines)

    composer = Composer(
        text,
        display_name,
        lines,
        max_nodes=MAX_NODES,
        max_depth=MAX_DEPTH,
        use_libyaml=_USE_LIBYAML,
    )
    result = composer.compose()
    if result is None:
        raise UsageError(
            f"{display_name}: the file is empty; "
            f"a {kind} needs at least {_TOP_LEVEL_KEYS[kind]}"
        )
    if composer.diagnostics:
        raise PipelineError(composer.diagnostics)
    data, marks = result
    if not isinstance(data, dict):
        raise UsageError(
            f"{display_name}: the top level must be a mapping of keys such as "
            f"{_TOP_LEVEL_KEYS[kind]}, not {describe_type(data)}"
        )

    logger.debug(
        "loaded %s: %d nodes in %.3f s",
        display_name,
        composer.node_count,
        time.perf_counter() - started,
    )
    return Document(
        data=data,
        source=SourceMap(display_name, lines, marks),
        path=Path(display_name) if path is None else path,
        display_name=display_name,
    )


def _read_bytes(path: Path, display_name: str, kind: str) -> bytes:
    if path.is_dir():
        raise UsageError(
            f"{display_name}: is a directory, not a file; pass the {kind} file itself"
        )
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{display_name}: file not found") from None
    except OSError as error:
        raise UsageError(f"{display_name}: cannot read the file: {error.strerror}") from None


def _decode(raw: bytes, display_name: str, kind: str) -> str:
    """Decode the file as UTF-8, rejecting UTF-16/32 and binary data with the byte offset."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(
            f"{display_name}: the file is UTF-16 or UTF-32 encoded (it starts with that "
            f"byte order mark); save it as UTF-8 text"
        )
    nul_offset = raw.find(b"\x00")
    if nul_offset >= 0:
        raise UsageError(
            f"{display_name}: binary data (a NUL byte at byte offset {nul_offset}); "
            f"the {kind} file must be UTF-8 text"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{display_name}: invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte offset "
            f"{error.start}); the {kind} file must be UTF-8 text"
        ) from None


def _check_printable(text: str, display_name: str, lines: list[str]) -> None:
    """Raise PipelineError at the first character that YAML does not allow in a stream."""
    match = _NON_PRINTABLE.search(text)
    if match is None:
        return
    line, column = _line_and_column(text, match.start())
    code = ord(match.group())
    raise PipelineError(
        [
            Diagnostic(
                message=f"character U+{code:04X} is not allowed in YAML",
                mark=Mark(display_name, line, column),
                hint=f'remove it, or write it as "\\u{code:04X}" inside a double-quoted string',
                # The character itself is replaced so that printing it cannot upset a terminal.
                excerpt=caret_excerpt(_NON_PRINTABLE.sub("\ufffd", lines[line - 1]), column),
            )
        ]
    )


def _line_and_column(text: str, offset: int) -> tuple[int, int]:
    """Convert a character offset into a 1-based (line, column)."""
    line = 1
    line_start = 0
    for line_break in _LINE_BREAK.finditer(text, 0, offset):
        line += 1
        line_start = line_break.end()
    return line, offset - line_start + 1

