"""Source positions and the diagnostics that point at them.

Every problem found in a pipeline file is a :class:`Diagnostic`. It prints as
``file:line:col: path: message``, the form editors and CI annotations understand.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: A location inside the loaded document: mapping keys and sequence indexes.
DocPath = tuple["str | int", ...]


@dataclass(frozen=True, order=True)
class Mark:
    """A position in a source file; ``line`` and ``column`` start at 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def format_path(path: Iterable[str | int]) -> str:
    """Format a document path the way users write it: ``stages[2].steps[0].deploy``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a pipeline file, with where it is and, when obvious, how to fix it."""

    message: str
    mark: Mark | None = None
    path: DocPath = ()
    hint: str | None = None
    #: Extra lines printed under the message: the offending source line and a caret.
    excerpt: str | None = None

    def format(self) -> str:
        parts = []
        if self.mark is not None:
            parts.append(str(self.mark))
        if self.path:
            parts.append(format_path(self.path))
        parts.append(self.message)
        text = ": ".join(parts)
        if self.hint:
            text += f" ({self.hint})"
        if self.excerpt:
            text += "\n" + self.excerpt
        return text

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.mark is None:
            return ("", 0, 0, self.message)
        return (self.mark.file, self.mark.line, self.mark.column, self.message)


def sorted_diagnostics(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """Sort by position; diagnostics without a position come first."""
    return sorted(diagnostics, key=Diagnostic.sort_key)


def caret_excerpt(source_line: str, column: int) -> str:
    """Return the source line and a caret under ``column`` (1-based), indented by two spaces."""
    line = source_line.rstrip("\r\n").expandtabs(1)
    caret = " " * max(column - 1, 0) + "^"
    return f"  {line}\n  {caret}"


def closest_match(word: str, choices: Iterable[str]) -> str | None:
    """Return the choice the user most likely meant by ``word``, or ``None``.

    Similar spelling wins (``canery`` -> ``canary``); failing that, a choice that starts
    with ``word`` (``prod`` -> ``production``), when exactly one does.
    """
    candidates = [choice for choice in choices if isinstance(choice, str)]
    close = difflib.get_close_matches(word, candidates, n=1)
    if close:
        return close[0]
    prefixed = [choice for choice in candidates if word and choice.startswith(word)]
    return prefixed[0] if len(prefixed) == 1 else None
