"""Compose plain Python values and their source marks from the events of one YAML document.

The composer builds dicts, lists and scalars with an explicit stack, so nesting depth never
reaches Python's recursion limit, and nothing is ever constructed from a tag. The rules it
applies (accepted tags, duplicate keys, merge keys, the node and depth limits, one copy per
alias) are listed in :mod:`pipeline.loader`, which runs it.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn, cast

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from pipeline.diagnostics import Diagnostic, Mark
from pipeline.errors import PipelineError, UsageError
from pipeline.sourcemap import NodeMarks
from pipeline.yamlevents import EventSource, event_position, open_parser, syntax_diagnostic
from pipeline.yamlscalars import (
    MAP_TAG,
    NON_SPECIFIC_TAG,
    SEQ_TAG,
    STR_TAG,
    TAGGED_SCALAR_TAGS,
    InvalidScalar,
    quote_text,
    resolve_plain,
    resolve_tagged,
    show_tag,
)

__all__ = ["Composer", "describe_type"]


@dataclass
class _Anchor:
    value: Any
    marks: NodeMarks
    #: Nodes in the anchored node with every alias inside it expanded.
    size: int
    #: Levels of nesting the node adds where an alias places it, which is 0 for a scalar.
    height: int
    #: The source text, for a scalar used as a mapping key through an alias.
    key_text: str | None


class _MergeKey(NamedTuple):
    """A "<<" entry, applied when its mapping ends."""

    value: Any
    marks: NodeMarks
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
        self, value: dict[str, Any] | list[Any], marks: NodeMarks, depth: int, node_count: int
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


class Composer:
    """Build plain Python values and their marks from the parser's events.

    Problems that leave the rest of the document readable (a bad tag, a duplicate key)
    are collected in ``diagnostics``. Problems that stop reading (a syntax error, the
    node or depth limit) raise PipelineError with everything collected so far.
    ``max_nodes`` and ``max_depth`` are the limits that :data:`pipeline.loader.MAX_NODES`
    and :data:`pipeline.loader.MAX_DEPTH` describe, and ``use_libyaml`` selects the parser.
    """

    def __init__(
        self,
        text: str,
        display_name: str,
        lines: list[str],
        *,
        max_nodes: int,
        max_depth: int,
        use_libyaml: bool,
    ) -> None:
        self._text = text
        self._display_name = display_name
        self._lines = lines
        self._max_nodes = max_nodes
        self._max_depth = max_depth
        self._use_libyaml = use_libyaml
        self.diagnostics: list[Diagnostic] = []
        self.node_count = 0
        self._stack: list[_Frame] = []
        self._anchors: dict[str, _Anchor] = {}
        self._open_anchors: set[str] = set()
        #: Places where an alias put its anchor's container, each to get its own copy at the end.
        self._shared: list[tuple[dict[str, Any] | list[Any], str | int]] = []
        self._root: tuple[Any, NodeMarks] | None = None
        self._root_is_empty = False

    def compose(self) -> tuple[Any, NodeMarks] | None:
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
        parser = open_parser(self._text, self._use_libyaml)
        try:
            self._read_events(parser)
        except yaml.MarkedYAMLError as error:
            self.diagnostics.append(
                syntax_diagnostic(error, self._display_name, self._lines, self._max_depth)
            )
            raise PipelineError(self.diagnostics) from None
        finally:
            # The pure-Python parser refers to itself through its state methods until disposed.
            parser.dispose()
        _copy_shared(self._shared)

    def _read_events(self, parser: EventSource) -> None:
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
        line, column = event_position(event)
        self._count_nodes(1, line, column)
        text = event.value
        plain = not event.style

        key_frame = self._frame_awaiting_key()
        if key_frame is not None:
            self._check_scalar(event, text, plain, line, column)
            is_merge = plain and event.tag is None and text == "<<"
            self._set_key(key_frame, text, is_merge, line, column)
            self._register_scalar_anchor(event.anchor, text, NodeMarks(line, column), text)
            return

        value = self._check_scalar(event, text, plain, line, column)
        number_text = text if plain and type(value) in (int, float) else None
        if not self._stack:
            self._root_is_empty = plain and text == "" and event.tag is None
        marks = NodeMarks(line, column, number_text)
        self._register_scalar_anchor(event.anchor, value, marks, text)
        self._add_value(value, marks, 0, shared=False)

    def _on_collection_start(self, event: CollectionStartEvent, *, is_mapping: bool) -> None:
        line, column = event_position(event)
        self._count_nodes(1, line, column)
        depth = len(self._stack) + 1
        if depth > self._max_depth:
            self._fail(
                f"the document is nested deeper than {self._max_depth} levels",
                "flatten the structure",
                line,
                column,
            )
        self._check_collection_tag(event, is_mapping, line, column)

        value: dict[str, Any] | list[Any]
        if is_mapping:
            value = {}
            marks = NodeMarks(line, column, None, {}, {})
        else:
            value = []
            marks = NodeMarks(line, column, None, [], None)
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
        line, column = event_position(event)
        name = event.anchor or ""
        anchor = self._find_anchor(name, line, column)
        key_frame = self._frame_awaiting_key()
        if anchor is None:
            self._count_nodes(1, line, column)
            if key_frame is not None:
                self._set_key(key_frame, "", False, line, column)
                key_frame.key_valid = False
            else:
                self._add_value(None, NodeMarks(line, column), 0, shared=False)
            return

        self._check_alias_limits(name, anchor, line, column)
        self.node_count += anchor.size
        if key_frame is not None:
            self._set_alias_key(key_frame, name, anchor, line, column)
            return

        source = anchor.marks
        marks = NodeMarks(line, column, source.plain_text, source.children, source.key_marks)
        deepest = len(self._stack) + anchor.height
        is_container = isinstance(anchor.value, (dict, list))
        self._add_value(anchor.value, marks, deepest, shared=is_container)

    def _reject_second_document(self, event: DocumentStartEvent) -> None:
        line, _ = event_position(event)
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
        marks: NodeMarks,
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
            cast("list[NodeMarks]", frame.marks.children).append(marks)
            if shared:
                self._shared.append((items, len(items) - 1))
            return

        if not frame.has_key:
            # Only a collection reaches here as a key: scalars and aliases set keys directly.
            self._reject_complex_key(frame, value, marks)
            return
        self._add_entry(frame, value, marks, shared=shared)

    def _add_entry(self, frame: _Frame, value: Any, marks: NodeMarks, *, shared: bool) -> None:
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
        cast("dict[str, NodeMarks]", frame.marks.children)[key] = marks
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
                f"{describe_type(anchor.value)}",
                "a mapping key must be a single value, such as a name",
                line,
                column,
            )

    def _reject_complex_key(self, frame: _Frame, value: Any, marks: NodeMarks) -> None:
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
        children = cast("dict[str, NodeMarks]", frame.marks.children)
        key_marks = cast("dict[str, tuple[int, int]]", frame.marks.key_marks)
        own_entries = list(mapping.items())
        mapping.clear()
        mapping.update(own_entries[: merge.position])
        for source, source_marks in sources:
            source_children = cast("dict[str, NodeMarks]", source_marks.children)
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
        self, value: Any, marks: NodeMarks
    ) -> list[tuple[dict[str, Any], NodeMarks]] | None:
        """Return the mappings named by a "<<" value, or None after recording why it is invalid."""
        if isinstance(value, dict):
            return [(value, marks)]
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            item_marks = cast("list[NodeMarks]", marks.children)
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
                return resolve_plain(text) if plain else text
            if tag in (STR_TAG, NON_SPECIFIC_TAG):
                return text
            if tag in TAGGED_SCALAR_TAGS:
                return resolve_tagged(text, tag)
        except InvalidScalar as error:
            self._add_diagnostic(error.message, error.hint, line, column)
            return text

        if tag in (MAP_TAG, SEQ_TAG):
            self._add_diagnostic(
                f"tag '{show_tag(tag)}' does not fit a scalar", "remove the tag", line, column
            )
        else:
            self._reject_tag(tag, line, column)
        return text

    def _check_collection_tag(
        self, event: CollectionStartEvent, is_mapping: bool, line: int, column: int
    ) -> None:
        tag = event.tag
        if tag is None or tag == NON_SPECIFIC_TAG:
            return
        if tag == (MAP_TAG if is_mapping else SEQ_TAG):
            return
        if tag in (MAP_TAG, SEQ_TAG, STR_TAG) or tag in TAGGED_SCALAR_TAGS:
            kind = "a mapping" if is_mapping else "a list"
            self._add_diagnostic(
                f"tag '{show_tag(tag)}' does not fit {kind}", "remove the tag", line, column
            )
            return
        self._reject_tag(tag, line, column)

    def _reject_tag(self, tag: str, line: int, column: int) -> None:
        self._add_diagnostic(
            f"tag '{show_tag(tag)}' is not allowed",
            "shipline reads plain YAML data only; remove the tag",
            line,
            column,
        )

    def _register_scalar_anchor(
        self, name: str | None, value: Any, marks: NodeMarks, text: str
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
        if self.node_count + anchor.size > self._max_nodes:
            self._fail(
                f"alias '*{name}' expands the document beyond {self._max_nodes} nodes "
                f'(a "billion laughs" document?); reduce the use of aliases',
                None,
                line,
                column,
            )
        if len(self._stack) + anchor.height > self._max_depth:
            self._fail(
                f"alias '*{name}' nests the document deeper than {self._max_depth} levels",
                "flatten the structure",
                line,
                column,
            )

    def _count_nodes(self, count: int, line: int, column: int) -> None:
        self.node_count += count
        if self.node_count > self._max_nodes:
            self._fail(
                f"the document has more than {self._max_nodes} nodes, "
                f"counting each alias at its expanded size",
                "split the pipeline or shorten repeated parts",
                line,
                column,
            )

    # --- diagnostics ---

    def _duplicate_key(self, key: str, first_line: int, line: int, column: int) -> None:
        self._add_diagnostic(
            f"duplicate key {quote_text(key)}",
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


def describe_type(value: Any) -> str:
    """Name the YAML type of a composed value for a message, such as "a mapping"."""
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
