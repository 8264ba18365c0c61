"""Source positions of a loaded pipeline file, looked up by the path of a value.

The composer (:mod:`pipeline.yamlcompose`) records one :class:`NodeMarks` per node.
:class:`SourceMap` looks up where the value or the key at a document path such as
``("stages", 0, "name")`` was written, so that an error message can point there.
"""

from __future__ import annotations

from pipeline.diagnostics import DocPath, Mark

__all__ = ["NodeMarks", "SourceMap"]


class NodeMarks:
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
        children: dict[str, NodeMarks] | list[NodeMarks] | None = None,
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

    def __init__(self, display_name: str, lines: list[str], root: NodeMarks) -> None:
        """Wrap the marks that :func:`pipeline.loader.load_text` builds; not for other callers."""
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

    def _find(self, path: DocPath) -> tuple[NodeMarks, tuple[int, int] | None]:
        """Return the deepest node on ``path`` and its key position if ``path`` ends at a key."""
        node = self._root
        key_position: tuple[int, int] | None = None
        for part in path:
            child, child_key_position = _child(node, part)
            if child is None:
                return node, None
            node, key_position = child, child_key_position
        return node, key_position

    def _walk(self, path: DocPath) -> tuple[NodeMarks, bool]:
        node = self._root
        for part in path:
            child, _ = _child(node, part)
            if child is None:
                return node, False
            node = child
        return node, True


def _child(node: NodeMarks, part: str | int) -> tuple[NodeMarks | None, tuple[int, int] | None]:
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
