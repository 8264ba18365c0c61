"""Load a pipeline file into plain Python values and keep the source position of every node.

PyYAML supplies only the event stream: the libyaml parser when PyYAML was built with it,
else its pure-Python parser. The composer in this module builds dicts, lists and scalars
from those events with an explicit stack, so nesting depth never reaches Python's recursion
limit, and nothing is ever constructed from a tag.

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

import gc
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, Protocol, cast

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner

from pipeline.diagnostics import Diagnostic, DocPath, Mark, caret_excerpt
from pipeline.errors import PipelineError, UsageError

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

_CORE_TAG_PREFIX = "tag:yaml.org,2002:"
_STR_TAG = _CORE_TAG_PREFIX + "str"
_INT_TAG = _CORE_TAG_PREFIX + "int"
_FLOAT_TAG = _CORE_TAG_PREFIX + "float"
_BOOL_TAG = _CORE_TAG_PREFIX + "bool"
_NULL_TAG = _CORE_TAG_PREFIX + "null"
_MAP_TAG = _CORE_TAG_PREFIX + "map"
_SEQ_TAG = _CORE_TAG_PREFIX + "seq"
_NON_SPECIFIC_TAG = "!"

_NULL_WORDS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL_WORDS = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
# A plain scalar that starts with any other character can only be a string or a null/bool word.
_NUMBER_START = frozenset("0123456789+-.")
_DECIMAL_INT = re.compile(r"[-+]?[0-9]+")
_OCTAL_INT = re.compile(r"0o[0-7]+")
_HEX_INT = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INFINITY = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")

# Line breaks as both PyYAML parsers count lines (YAML 1.1 includes NEL, LS and PS).
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Characters that YAML 1.1 does not allow in a stream. Both parsers reject the same set, but
# with a character offset instead of a line and column, so they are found here first.
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
# libyaml 0.2.6 (in the PyYAML 6.0.4 wheels) stops at 1,000 levels of nesting with this problem
# text. It can reach that limit while scanning ahead on one line of "[[[[", before it has
# passed level 101 to the composer.
_LIBYAML_DEPTH_PROBLEM = "exceeded maximum nesting depth"
_MESSAGE_TEXT_LIMIT = 40


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


class _NodeMarks:
    """Source position of one node, and the positions of its children.

    Line and column are 1-based. An alias shares the children of its anchor instead of
    copying them, because positions never change after composition.
    """

    __slots__ = ("children", "column", "key_marks", "line", "plain_text")

    def __init__(
        self,
        line: int,
        column: int,
        plain_text: str | None = None,
        children: dict[str, _NodeMarks] | list[_NodeMarks] | None = None,
        key_marks: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.line = line
        self.column = column
        #: The source text of a plain scalar that resolved to int or float.
        self.plain_text = plain_text
        self.children = children
        #: For a mapping: the (line, column) of each key.
        self.key_marks = key_marks


class SourceMap:
    """Source positions of the values and keys of a loaded document, looked up by path.

    A path that goes past what the document contains resolves to its nearest known
    ancestor, so a schema error about a missing key still points at the mapping that
    lacks it. Inside an alias, the alias itself has the position of ``*name``, and the
    values under it have the positions where the anchored node writes them.
    """

    def __init__(self, display_name: str, lines: list[str], root: _NodeMarks) -> None:
        """Wrap the marks that :func:`load_text` builds; not meant to be called elsewhere."""
        self._display_name = display_name
        self._lines = lines
        self._root = root

    def value_mark(self, path: DocPath) -> Mark | None:
        """Return the position of the value at ``path``, or of its nearest known ancestor."""
        node, _ = self._find(path)
        return Mark(self._display_name, node.line, node.column)

    def key_mark(self, path: DocPath) -> Mark | None:
        """Return the position of the mapping key whose value is at ``path``.

        Falls back to :meth:`value_mark` for the root, a sequence item or an unknown path.
        """
        node, key_position = self._find(path)
        if key_position is None:
            return Mark(self._display_name, node.line, node.column)
        return Mark(self._display_name, *key_position)

    def plain_text(self, path: DocPath) -> str | None:
        """Return the source text of the unquoted scalar at ``path`` if it resolved to a number.

        ``version: 1.10`` loads as the float 1.1, and this returns ``"1.10"`` so that an
        error can show what the user wrote. Returns None for any other value or path.
        """
        node, found = self._walk(path)
        if not found:
            return None
        return node.plain_text

    def line_text(self, line: int) -> str:
        """Return source line ``line`` (1-based) without its line break, or "" if out of range."""
        if 1 <= line <= len(self._lines):
            return self._lines[line - 1]
        return ""

    def _find(self, path: DocPath) -> tuple[_NodeMarks, tuple[int, int] | None]:
        """Return the deepest node on ``path`` and its key position if ``path`` ends at a key."""
        node = self._root
        key_position: tuple[int, int] | None = None
        for part in path:
            child, child_key_position = _child(node, part)
            if child is None:
                return node, None
            node, key_position = child, child_key_position
        return node, key_position

    def _walk(self, path: DocPath) -> tuple[_NodeMarks, bool]:
        node = self._root
        for part in path:
            child, _ = _child(node, part)
            if child is None:
                return node, False
            node = child
        return node, True


def _child(node: _NodeMarks, part: str | int) -> tuple[_NodeMarks | None, tuple[int, int] | None]:
    """Return the child at ``part`` and its key position, or (None, None) if there is none."""
    children = node.children
    if isinstance(children, dict) and isinstance(part, str):
        child = children.get(part)
        if child is None or node.key_marks is None:
            return None, None
        return child, node.key_marks[part]
    if isinstance(children, list) and isinstance(part, int) and 0 <= part < len(children):
        return children[part], None
    return None, None


def find_default_file(directory: Path) -> Path:
    """Return ``directory/shipline.yml`` or ``directory/shipline.yaml``, whichever exists.

    Raises UsageError when neither exists, and when both exist, because loading one of
    them silently could run a pipeline the user did not mean.
    """
    found = [directory / name for name in DEFAULT_FILE_NAMES if (directory / name).exists()]
    if len(found) > 1:
        raise UsageError(
            f"both {found[0]} and {found[1]} exist; "
            f"pass the one to use as the pipeline file argument"
        )
    if not found:
        raise UsageError(
            f"no pipeline file found: neither {directory / DEFAULT_FILE_NAMES[0]} "
            f"nor {directory / DEFAULT_FILE_NAMES[1]} exists; "
            f"create one or pass the pipeline file as an argument"
        )
    return found[0]


def load_file(path: Path) -> Document:
    """Read and load the pipeline file at ``path``.

    Raises UsageError (one line, naming the file) when the file cannot be read, is not
    UTF-8 text, is empty, contains more than one YAML document or has no mapping at the top.
    Raises PipelineError with positioned diagnostics for YAML syntax errors and for
    content this loader rejects (see the module docstring).
    """
    display_name = str(path)
    raw = _read_bytes(path, display_name)
    text = _decode(raw, display_name)
    return load_text(text, display_name, path)


def load_text(text: str, display_name: str, path: Path | None = None) -> Document:
    """Load pipeline YAML from ``text``, naming it ``display_name`` in marks and messages.

    ``path`` defaults to ``Path(display_name)``. A leading byte order mark is ignored.
    Raises the same errors as :func:`load_file`, except those about reading the file.
    """
    started = time.perf_counter()
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_BREAK.split(text)
    _check_printable(text, display_name, lines)

    composer = _Composer(text, display_name, lines)
    result = composer.compose()
    if result is None:
        raise UsageError(
            f"{display_name}: the file is empty; "
            f"a pipeline needs at least 'version', 'name' and 'stages'"
        )
    if composer.diagnostics:
        raise PipelineError(composer.diagnostics)
    data, marks = result
    if not isinstance(data, dict):
        raise UsageError(
            f"{display_name}: the top level must be a mapping of keys such as "
            f"'version', 'name' and 'stages', not {_describe_type(data)}"
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


def _read_bytes(path: Path, display_name: str) -> bytes:
    if path.is_dir():
        raise UsageError(
            f"{display_name}: is a directory, not a file; pass the pipeline file itself"
        )
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{display_name}: file not found") from None
    except OSError as error:
        raise UsageError(f"{display_name}: cannot read the file: {error.strerror}") from None


def _decode(raw: bytes, display_name: str) -> str:
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
            f"the pipeline file must be UTF-8 text"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{display_name}: invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte offset "
            f"{error.start}); the pipeline file must be UTF-8 text"
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


def _describe_type(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null"


def _quote(text: str) -> str:
    """Quote source text for a message, shortened so that one message stays one line."""
    if len(text) > _MESSAGE_TEXT_LIMIT:
        text = text[: _MESSAGE_TEXT_LIMIT - 3] + "..."
    return repr(text)


def _show_tag(tag: str) -> str:
    """Write a resolved tag the way it is usually written: ``!!int`` instead of the full URI."""
    if tag.startswith(_CORE_TAG_PREFIX):
        return "!!" + tag[len(_CORE_TAG_PREFIX) :]
    return tag


# --- scalars ---------------------------------------------------------------------------


class _InvalidScalar(Exception):
    """A scalar whose text does not fit its tag. The composer turns it into a Diagnostic."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _resolve_plain(text: str) -> Any:
    """Resolve an untagged plain scalar by the YAML 1.2 core schema."""
    if text in _NULL_WORDS:
        return None
    boolean = _BOOL_WORDS.get(text)
    if boolean is not None:
        return boolean
    if text[0] not in _NUMBER_START:
        return text
    number = _parse_number(text)
    if number is None:
        return text
    return number


def _parse_number(text: str) -> int | float | None:
    """Return the core-schema int or float that ``text`` spells, or None if it is no number."""
    if _DECIMAL_INT.fullmatch(text):
        return _decimal_int(text)
    if _OCTAL_INT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX_INT.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INFINITY.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return None


def _decimal_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        # Python 3.11 (and 3.10.7) raise ValueError past sys.get_int_max_str_digits() digits.
        raise _InvalidScalar(
            f"the integer {_quote(text)} has too many digits",
            "quote it to keep it as a string",
        ) from None


def _resolve_tagged(text: str, tag: str) -> Any:
    """Resolve a scalar with an explicit standard tag, raising _InvalidScalar on a misfit."""
    value: Any = None
    if tag == _INT_TAG:
        value = _parse_number(text)
        valid = isinstance(value, int)
    elif tag == _FLOAT_TAG:
        value = _to_float(_parse_number(text))
        valid = value is not None
    elif tag == _BOOL_TAG:
        value = _BOOL_WORDS.get(text)
        valid = value is not None
    else:
        valid = text in _NULL_WORDS
    if not valid:
        raise _InvalidScalar(
            f"{_quote(text)} is not a valid {_show_tag(tag)} value",
            "fix the value or remove the tag",
        )
    return value


def _to_float(number: float | None) -> float | None:
    """Convert an int or float to float, or return None for no number or one out of range."""
    if number is None:
        return None
    try:
        return float(number)
    except OverflowError:
        return None


_TAGGED_SCALAR_TAGS = frozenset({_INT_TAG, _FLOAT_TAG, _BOOL_TAG, _NULL_TAG})


# --- composer --------------------------------------------------------------------------


class _EventSource(Protocol):
    def get_event(self) -> Any: ...

    def dispose(self) -> None: ...


class _PythonEventParser(Reader, Scanner, Parser):
    """PyYAML's pure-Python parser without a composer or constructor: events only."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


def _open_parser(text: str) -> _EventSource:
    if _USE_LIBYAML:
        # Imported here because the module exists only when PyYAML was built with libyaml.
        from yaml._yaml import CParser

        return CParser(text)
    return _PythonEventParser(text)


@dataclass
class _Anchor:
    value: Any
    marks: _NodeMarks
    #: Nodes in the anchored node with every alias inside it expanded.
    size: int
    #: Levels of nesting the node adds where an alias places it, which is 0 for a scalar.
    height: int
    #: The source text, for a scalar used as a mapping key through an alias.
    key_text: str | None


class _MergeKey(NamedTuple):
    """A "<<" entry, applied when its mapping ends."""

    value: Any
    marks: _NodeMarks
    key_line: int
    #: How many of the mapping's own keys come before "<<": merged keys are inserted there.
    position: int


class _Frame:
    """A mapping or sequence that is open on the composer's stack."""

    __slots__ = (
        "anchor",
        "deepest",
        "depth",
        "has_key",
        "is_mapping",
        "key",
        "key_is_merge",
        "key_position",
        "key_valid",
        "marks",
        "merge",
        "node_count_before",
        "value",
    )

    def __init__(
        self, value: dict[str, Any] | list[Any], marks: _NodeMarks, depth: int, node_count: int
    ) -> None:
        self.value = value
        self.marks = marks
        self.is_mapping = isinstance(value, dict)
        self.anchor: str | None = None
        self.depth = depth
        #: The deepest level any node inside this one reaches, aliases expanded.
        self.deepest = depth
        self.node_count_before = node_count
        # Mapping state: the key waiting for its value.
        self.has_key = False
        self.key = ""
        self.key_valid = True
        self.key_is_merge = False
        self.key_position = (0, 0)
        self.merge: _MergeKey | None = None


class _Composer:
    """Build plain Python values and their marks from the parser's events.

    Problems that leave the rest of the document readable (a bad tag, a duplicate key)
    are collected in ``diagnostics``. Problems that stop reading (a syntax error, the
    node or depth limit) raise PipelineError with everything collected so far.
    """

    def __init__(self, text: str, display_name: str, lines: list[str]) -> None:
        self._text = text
        self._display_name = display_name
        self._lines = lines
        self.diagnostics: list[Diagnostic] = []
        self.node_count = 0
        self._stack: list[_Frame] = []
        self._anchors: dict[str, _Anchor] = {}
        self._open_anchors: set[str] = set()
        #: Places where an alias put its anchor's container, each to get its own copy at the end.
        self._shared: list[tuple[dict[str, Any] | list[Any], str | int]] = []
        self._root: tuple[Any, _NodeMarks] | None = None
        self._root_is_empty = False

    def compose(self) -> tuple[Any, _NodeMarks] | None:
        """Compose the only document, or return None when there is none or it is empty.

        The cyclic garbage collector is paused meanwhile. Composing creates no reference
        cycles, so the pause frees nothing later, and without it the collector rescans the
        growing tree over and over: a 2,000-stage file took about 30% longer in a measurement.
        """
        collector_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._read_document()
        finally:
            if collector_was_enabled:
                gc.enable()

        if self._root is None or self._root_is_empty:
            return None
        return self._root

    def _read_document(self) -> None:
        parser = _open_parser(self._text)
        try:
            self._read_events(parser)
        except yaml.MarkedYAMLError as error:
            self.diagnostics.append(self._syntax_diagnostic(error))
            raise PipelineError(self.diagnostics) from None
        finally:
            # The pure-Python parser refers to itself through its state methods until disposed.
            parser.dispose()
        _copy_shared(self._shared)

    def _read_events(self, parser: _EventSource) -> None:
        """Dispatch every event to its handler; this loop is the hot path of loading."""
        documents = 0
        while True:
            event = parser.get_event()
            kind = type(event)
            if kind is ScalarEvent:
                self._on_scalar(event)
            elif kind is MappingStartEvent:
                self._on_collection_start(event, is_mapping=True)
            elif kind is SequenceStartEvent:
                self._on_collection_start(event, is_mapping=False)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self._on_collection_end()
            elif kind is AliasEvent:
                self._on_alias(event)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    self._reject_second_document(event)
            elif kind is StreamEndEvent or event is None:
                return

    # --- events ---

    def _on_scalar(self, event: ScalarEvent) -> None:
        line, column = _position(event)
        self._count_nodes(1, line, column)
        text = event.value
        plain = not event.style

        key_frame = self._frame_awaiting_key()
        if key_frame is not None:
            self._check_scalar(event, text, plain, line, column)
            is_merge = plain and event.tag is None and text == "<<"
            self._set_key(key_frame, text, is_merge, line, column)
            self._register_scalar_anchor(event.anchor, text, _NodeMarks(line, column), text)
            return

        value = self._check_scalar(event, text, plain, line, column)
        number_text = text if plain and type(value) in (int, float) else None
        if not self._stack:
            self._root_is_empty = plain and text == "" and event.tag is None
        marks = _NodeMarks(line, column, number_text)
        self._register_scalar_anchor(event.anchor, value, marks, text)
        self._add_value(value, marks, 0, shared=False)

    def _on_collection_start(self, event: CollectionStartEvent, *, is_mapping: bool) -> None:
        line, column = _position(event)
        self._count_nodes(1, line, column)
        depth = len(self._stack) + 1
        if depth > MAX_DEPTH:
            self._fail(
                f"the document is nested deeper than {MAX_DEPTH} levels",
                "flatten the structure",
                line,
                column,
            )
        self._check_collection_tag(event, is_mapping, line, column)

        value: dict[str, Any] | list[Any]
        if is_mapping:
            value = {}
            marks = _NodeMarks(line, column, None, {}, {})
        else:
            value = []
            marks = _NodeMarks(line, column, None, [], None)
        frame = _Frame(value, marks, depth, self.node_count - 1)
        if event.anchor is not None:
            frame.anchor = event.anchor
            self._open_anchors.add(event.anchor)
        self._stack.append(frame)

    def _on_collection_end(self) -> None:
        frame = self._stack.pop()
        if frame.merge is not None:
            self._apply_merge(frame, frame.merge)
        if frame.anchor is not None:
            self._open_anchors.discard(frame.anchor)
            self._anchors[frame.anchor] = _Anchor(
                value=frame.value,
                marks=frame.marks,
                size=self.node_count - frame.node_count_before,
                height=frame.deepest - frame.depth + 1,
                key_text=None,
            )
        self._add_value(frame.value, frame.marks, frame.deepest, shared=False)

    def _on_alias(self, event: AliasEvent) -> None:
        line, column = _position(event)
        name = event.anchor or ""
        anchor = self._find_anchor(name, line, column)
        key_frame = self._frame_awaiting_key()
        if anchor is None:
            self._count_nodes(1, line, column)
            if key_frame is not None:
                self._set_key(key_frame, "", False, line, column)
                key_frame.key_valid = False
            else:
                self._add_value(None, _NodeMarks(line, column), 0, shared=False)
            return

        self._check_alias_limits(name, anchor, line, column)
        self.node_count += anchor.size
        if key_frame is not None:
            self._set_alias_key(key_frame, name, anchor, line, column)
            return

        source = anchor.marks
        marks = _NodeMarks(line, column, source.plain_text, source.children, source.key_marks)
        deepest = len(self._stack) + anchor.height
        is_container = isinstance(anchor.value, (dict, list))
        self._add_value(anchor.value, marks, deepest, shared=is_container)

    def _reject_second_document(self, event: DocumentStartEvent) -> None:
        line, _ = _position(event)
        raise UsageError(
            f"{self._display_name}: the file contains more than one YAML document "
            f"(the second starts on line {line}); keep one pipeline per file"
        )

    # --- building values ---

    def _frame_awaiting_key(self) -> _Frame | None:
        """Return the open mapping if the next node is one of its keys, else None."""
        if self._stack:
            frame = self._stack[-1]
            if frame.is_mapping and not frame.has_key:
                return frame
        return None

    def _add_value(
        self,
        value: Any,
        marks: _NodeMarks,
        deepest: int,
        *,
        shared: bool,
    ) -> None:
        """Place a finished node into the open collection, or make it the document root.

        ``shared`` marks a container that is also reachable from its anchor, so that it is
        copied before the document is returned.
        """
        if not self._stack:
            self._root = (value, marks)
            return

        frame = self._stack[-1]
        frame.deepest = max(frame.deepest, deepest)
        if not frame.is_mapping:
            items = cast("list[Any]", frame.value)
            items.append(value)
            cast("list[_NodeMarks]", frame.marks.children).append(marks)
            if shared:
                self._shared.append((items, len(items) - 1))
            return

        if not frame.has_key:
            # Only a collection reaches here as a key: scalars and aliases set keys directly.
            self._reject_complex_key(frame, value, marks)
            return
        self._add_entry(frame, value, marks, shared=shared)

    def _add_entry(self, frame: _Frame, value: Any, marks: _NodeMarks, *, shared: bool) -> None:
        frame.has_key = False
        if not frame.key_valid:
            return
        key = frame.key
        key_line, key_column = frame.key_position

        if frame.key_is_merge:
            if frame.merge is not None:
                self._duplicate_key(key, frame.merge.key_line, key_line, key_column)
                return
            frame.merge = _MergeKey(value, marks, key_line, len(frame.value))
            return

        mapping = cast("dict[str, Any]", frame.value)
        key_marks = cast("dict[str, tuple[int, int]]", frame.marks.key_marks)
        if key in mapping:
            self._duplicate_key(key, key_marks[key][0], key_line, key_column)
            return
        mapping[key] = value
        cast("dict[str, _NodeMarks]", frame.marks.children)[key] = marks
        key_marks[key] = frame.key_position
        if shared:
            self._shared.append((mapping, key))

    def _set_key(self, frame: _Frame, key: str, is_merge: bool, line: int, column: int) -> None:
        frame.has_key = True
        frame.key = key
        frame.key_valid = True
        frame.key_is_merge = is_merge
        frame.key_position = (line, column)

    def _set_alias_key(
        self, frame: _Frame, name: str, anchor: _Anchor, line: int, column: int
    ) -> None:
        self._set_key(frame, anchor.key_text or "", False, line, column)
        if anchor.key_text is None:
            frame.key_valid = False
            self._add_diagnostic(
                f"alias '*{name}' is used as a mapping key but its anchor is "
                f"{_describe_type(anchor.value)}",
                "a mapping key must be a single value, such as a name",
                line,
                column,
            )

    def _reject_complex_key(self, frame: _Frame, value: Any, marks: _NodeMarks) -> None:
        self._set_key(frame, "", False, marks.line, marks.column)
        frame.key_valid = False
        kind = "a mapping" if isinstance(value, dict) else "a list"
        self._add_diagnostic(
            f"a mapping key must be a single value, not {kind}",
            "write the key as a plain string",
            marks.line,
            marks.column,
        )

    def _apply_merge(self, frame: _Frame, merge: _MergeKey) -> None:
        """Insert the keys of the "<<" mappings that the mapping does not set itself.

        Merged keys take the place of "<<" in key order, in the order of their source
        mappings. The dict is changed in place because ``_shared`` may already refer to it.
        """
        sources = self._merge_sources(merge.value, merge.marks)
        if sources is None:
            return

        mapping = cast("dict[str, Any]", frame.value)
        children = cast("dict[str, _NodeMarks]", frame.marks.children)
        key_marks = cast("dict[str, tuple[int, int]]", frame.marks.key_marks)
        own_entries = list(mapping.items())
        mapping.clear()
        mapping.update(own_entries[: merge.position])
        for source, source_marks in sources:
            source_children = cast("dict[str, _NodeMarks]", source_marks.children)
            source_key_marks = cast("dict[str, tuple[int, int]]", source_marks.key_marks)
            for key, item in source.items():
                if key in mapping or key in children:
                    continue
                mapping[key] = item
                children[key] = source_children[key]
                key_marks[key] = source_key_marks[key]
                if isinstance(item, (dict, list)):
                    self._shared.append((mapping, key))
        mapping.update(own_entries[merge.position :])

    def _merge_sources(
        self, value: Any, marks: _NodeMarks
    ) -> list[tuple[dict[str, Any], _NodeMarks]] | None:
        """Return the mappings named by a "<<" value, or None after recording why it is invalid."""
        if isinstance(value, dict):
            return [(value, marks)]
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            item_marks = cast("list[_NodeMarks]", marks.children)
            return list(zip(value, item_marks, strict=True))
        self._add_diagnostic(
            "the value of a merge key '<<' must be a mapping or a list of mappings",
            "for example '<<: *defaults' or '<<: [*defaults, *overrides]'",
            marks.line,
            marks.column,
        )
        return None

    # --- checks ---

    def _check_scalar(
        self, event: ScalarEvent, text: str, plain: bool, line: int, column: int
    ) -> Any:
        """Return the scalar's value, recording a diagnostic (and returning the text) if invalid."""
        tag = event.tag
        try:
            if tag is None:
                return _resolve_plain(text) if plain else text
            if tag in (_STR_TAG, _NON_SPECIFIC_TAG):
                return text
            if tag in _TAGGED_SCALAR_TAGS:
                return _resolve_tagged(text, tag)
        except _InvalidScalar as error:
            self._add_diagnostic(error.message, error.hint, line, column)
            return text

        if tag in (_MAP_TAG, _SEQ_TAG):
            self._add_diagnostic(
                f"tag '{_show_tag(tag)}' does not fit a scalar", "remove the tag", line, column
            )
        else:
            self._reject_tag(tag, line, column)
        return text

    def _check_collection_tag(
        self, event: CollectionStartEvent, is_mapping: bool, line: int, column: int
    ) -> None:
        tag = event.tag
        if tag is None or tag == _NON_SPECIFIC_TAG:
            return
        if tag == (_MAP_TAG if is_mapping else _SEQ_TAG):
            return
        if tag in (_MAP_TAG, _SEQ_TAG, _STR_TAG) or tag in _TAGGED_SCALAR_TAGS:
            kind = "a mapping" if is_mapping else "a list"
            self._add_diagnostic(
                f"tag '{_show_tag(tag)}' does not fit {kind}", "remove the tag", line, column
            )
            return
        self._reject_tag(tag, line, column)

    def _reject_tag(self, tag: str, line: int, column: int) -> None:
        self._add_diagnostic(
            f"tag '{_show_tag(tag)}' is not allowed",
            "shipline reads plain YAML data only; remove the tag",
            line,
            column,
        )

    def _register_scalar_anchor(
        self, name: str | None, value: Any, marks: _NodeMarks, text: str
    ) -> None:
        if name is not None:
            self._anchors[name] = _Anchor(value, marks, size=1, height=0, key_text=text)

    def _find_anchor(self, name: str, line: int, column: int) -> _Anchor | None:
        if name in self._open_anchors:
            self._add_diagnostic(
                f"alias '*{name}' is used inside the node that defines '&{name}'",
                "a node cannot contain itself",
                line,
                column,
            )
            return None
        anchor = self._anchors.get(name)
        if anchor is None:
            self._add_diagnostic(
                f"alias '*{name}' refers to no anchor defined before it",
                f"add '&{name}' to a node above this line",
                line,
                column,
            )
        return anchor

    def _check_alias_limits(self, name: str, anchor: _Anchor, line: int, column: int) -> None:
        """Fail before the alias is placed if its expansion passes a limit."""
        if self.node_count + anchor.size > MAX_NODES:
            self._fail(
                f"alias '*{name}' expands the document beyond {MAX_NODES} nodes "
                f'(a "billion laughs" document?); reduce the use of aliases',
                None,
                line,
                column,
            )
        if len(self._stack) + anchor.height > MAX_DEPTH:
            self._fail(
                f"alias '*{name}' nests the document deeper than {MAX_DEPTH} levels",
                "flatten the structure",
                line,
                column,
            )

    def _count_nodes(self, count: int, line: int, column: int) -> None:
        self.node_count += count
        if self.node_count > MAX_NODES:
            self._fail(
                f"the document has more than {MAX_NODES} nodes, "
                f"counting each alias at its expanded size",
                "split the pipeline or shorten repeated parts",
                line,
                column,
            )

    # --- diagnostics ---

    def _duplicate_key(self, key: str, first_line: int, line: int, column: int) -> None:
        self._add_diagnostic(
            f"duplicate key {_quote(key)}",
            f"first defined on line {first_line}; remove one of them",
            line,
            column,
        )

    def _add_diagnostic(self, message: str, hint: str | None, line: int, column: int) -> None:
        mark = Mark(self._display_name, line, column)
        self.diagnostics.append(Diagnostic(message=message, mark=mark, hint=hint))

    def _fail(self, message: str, hint: str | None, line: int, column: int) -> NoReturn:
        self._add_diagnostic(message, hint, line, column)
        raise PipelineError(self.diagnostics)

    def _syntax_diagnostic(self, error: yaml.MarkedYAMLError) -> Diagnostic:
        """Turn a parser or scanner error into a diagnostic with the offending line and a caret.

        When the problem is on a blank line (typically the end of the file), the excerpt
        shows the line where the unfinished construct started instead.
        """
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        context = error.context if error.problem else None
        if mark is None:
            return Diagnostic(message=problem, hint=context)

        line, column = mark.line + 1, mark.column + 1
        if problem == _LIBYAML_DEPTH_PROBLEM:
            return Diagnostic(
                message=f"the document is nested deeper than {MAX_DEPTH} levels",
                mark=Mark(self._display_name, line, column),
                hint="flatten the structure",
            )
        excerpt_line, excerpt_column = line, column
        context_mark = error.context_mark
        if context and context_mark is not None and context_mark.line != mark.line:
            context += f" on line {context_mark.line + 1}"
            if not self._source_line(line).strip():
                excerpt_line, excerpt_column = context_mark.line + 1, context_mark.column + 1
        if self._source_line(line)[column - 1 : column] == "\t":
            tab_hint = "indent with spaces, because YAML does not allow tabs for indentation"
            context = f"{context}; {tab_hint}" if context else tab_hint
        return Diagnostic(
            message=problem,
            mark=Mark(self._display_name, line, column),
            hint=context,
            excerpt=caret_excerpt(self._source_line(excerpt_line), excerpt_column),
        )

    def _source_line(self, line: int) -> str:
        return self._lines[line - 1] if 1 <= line <= len(self._lines) else ""


def _position(event: Event) -> tuple[int, int]:
    """Return the 1-based (line, column) where ``event`` starts; both parsers set that mark."""
    mark = event.start_mark
    if mark is None:
        return 0, 0
    return mark.line + 1, mark.column + 1


def _copy_shared(shared: list[tuple[dict[str, Any] | list[Any], str | int]]) -> None:
    """Replace every container placed by an alias or merge with a copy of its own."""
    for container, key in shared:
        container[key] = _copy_tree(container[key])  # type: ignore[index]


def _copy_tree(value: Any) -> Any:
    """Copy nested dicts and lists without recursion. Scalars are immutable and shared."""
    if not isinstance(value, (dict, list)):
        return value
    top: dict[str, Any] | list[Any] = {} if isinstance(value, dict) else []
    pending: list[tuple[Any, Any]] = [(value, top)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            copied = item
            if isinstance(item, dict):
                copied = {}
                pending.append((item, copied))
            elif isinstance(item, list):
                copied = []
                pending.append((item, copied))
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return top
