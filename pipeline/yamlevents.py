"""The YAML event stream: the PyYAML parser that produces it, and its syntax errors.

PyYAML supplies only events here: the libyaml parser when PyYAML was built with it, else
its pure-Python parser. Both count lines and columns from 0, and every position returned
here counts from 1.
"""

from __future__ import annotations

from typing import Any, Protocol

import yaml
from yaml.events import Event
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.scanner import Scanner

from pipeline.diagnostics import Diagnostic, Mark, caret_excerpt

__all__ = ["EventSource", "event_position", "open_parser", "syntax_diagnostic"]

# libyaml 0.2.6 (in the PyYAML 6.0.4 wheels) stops at 1,000 levels of nesting with this problem
# text. It can reach that limit while scanning ahead on one line of "[[[[", before it has
# passed level 101 to the composer.
_LIBYAML_DEPTH_PROBLEM = "exceeded maximum nesting depth"


class EventSource(Protocol):
    """The part of either PyYAML parser that the composer uses."""

    def get_event(self) -> Any: ...

    def dispose(self) -> None: ...


class _PythonEventParser(Reader, Scanner, Parser):
    """PyYAML's pure-Python parser without a composer or constructor: events only."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


def open_parser(text: str, use_libyaml: bool) -> EventSource:
    """Return libyaml's event parser for ``text`` if ``use_libyaml``, else PyYAML's own."""
    if use_libyaml:
        # Imported here because the module exists only when PyYAML was built with libyaml.
        from yaml._yaml import CParser

        return CParser(text)
    return _PythonEventParser(text)


def event_position(event: Event) -> tuple[int, int]:
    """Return the 1-based (line, column) where ``event`` starts; both parsers set that mark."""
    mark = event.start_mark
    if mark is None:
        return 0, 0
    return mark.line + 1, mark.column + 1


def syntax_diagnostic(
    error: yaml.MarkedYAMLError, display_name: str, lines: list[str], max_depth: int
) -> Diagnostic:
    """Turn a parser or scanner error into a diagnostic with the offending line and a caret.

    When the problem is on a blank line (typically the end of the file), the excerpt
    shows the line where the unfinished construct started instead. ``lines`` are the source
    lines, and ``max_depth`` is the nesting limit that a libyaml depth error reports.
    """
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "invalid YAML"
    context = error.context if error.problem else None
    if mark is None:
        return Diagnostic(message=problem, hint=context)

    line, column = mark.line + 1, mark.column + 1
    if problem == _LIBYAML_DEPTH_PROBLEM:
        return Diagnostic(
            message=f"the document is nested deeper than {max_depth} levels",
            mark=Mark(display_name, line, column),
            hint="flatten the structure",
        )
    excerpt_line, excerpt_column = line, column
    context_mark = error.context_mark
    if context and context_mark is not None and context_mark.line != mark.line:
        context += f" on line {context_mark.line + 1}"
        if not _source_line(lines, line).strip():
            excerpt_line, excerpt_column = context_mark.line + 1, context_mark.column + 1
    elif not _source_line(lines, line).strip():
        unclosed = _unclosed_bracket(lines)
        if unclosed is not None:
            excerpt_line, excerpt_column, bracket = unclosed
            closing = "]" if bracket == "[" else "}"
            context = (f"the {bracket!r} on line {excerpt_line} is never closed: add "
                       f"{closing!r} where it ends")
    if _source_line(lines, line)[column - 1 : column] == "\t":
        tab_hint = "indent with spaces, because YAML does not allow tabs for indentation"
        context = f"{context}; {tab_hint}" if context else tab_hint
    return Diagnostic(
        message=problem,
        mark=Mark(display_name, line, column),
        hint=context,
        excerpt=caret_excerpt(_source_line(lines, excerpt_line), excerpt_column),
    )


def _unclosed_bracket(lines: list[str]) -> tuple[int, int, str] | None:
    """Return the line, column and character of the last ``[`` or ``{`` that the file
    never closes, or None. Quoted text and comments are skipped, roughly as YAML reads
    them: enough to point at the bracket when the parser stops at the end of the file."""
    open_brackets: list[tuple[int, int, str]] = []
    for number, text in enumerate(lines, start=1):
        quote = ""
        for index, char in enumerate(text):
            if quote:
                if char == quote:
                    quote = ""
            elif char in "'\"" and (index == 0 or text[index - 1] in " \t[{,:"):
                quote = char
            elif char == "#" and (index == 0 or text[index - 1] in " \t"):
                break
            elif char in "[{":
                open_brackets.append((number, index + 1, char))
            elif char in "]}" and open_brackets:
                open_brackets.pop()
    return open_brackets[-1] if open_brackets else None


def _source_line(lines: list[str], line: int) -> str:
    return lines[line - 1] if 1 <= line <= len(lines) else ""
