"""Command templates: placeholders filled in per argument, never through a shell unasked.

A template is a command line with ``{name}`` placeholders, such as
``deploy.sh {instance} {version}``. Without a shell, the template is split into
arguments with :func:`shlex.split` first, and each placeholder is replaced inside its
argument afterwards. A value therefore never becomes more than one argument and cannot
add shell syntax: ``{version}`` set to ``1.0; rm -rf /`` stays one argument. With
``shell=True`` every value is quoted with :func:`shlex.quote` and the whole line runs
through ``/bin/sh -c``. A template that starts a shell itself, as in
``sh -c 'echo {version}'``, puts the value into shell code unquoted: pass values to such
a script as arguments (``sh -c 'echo "$1"' sh {version}``) instead.

``{{`` and ``}}`` stand for literal braces. A placeholder is a plain name: format
specifications, conversions, attributes and indexes (``{version!r}``, ``{a.b}``) are
rejected, because a template comes from a pipeline file and must not reach into
Python objects.

Checking a template needs none of the process machinery of :mod:`pipeline.commands`,
so ``shipline validate`` imports only this module.
"""

from __future__ import annotations

import functools
import re
import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.errors import ShiplineError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMATTER = string.Formatter()


class TemplateError(ShiplineError):
    """A command template that cannot be filled in: unknown, invalid or unmatched braces."""


def template_fields(template: str, kind: str = "command") -> list[str]:
    """Return the placeholder names in ``template``, in order of appearance.

    Raises TemplateError for an unmatched brace or a placeholder that is not a plain
    name; ``kind`` names the template in the message (``command``, ``URL``).
    """
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"invalid {kind} {template!r}: {exc} (write {{{{ and }}}} for literal braces)"
        ) from exc

    names = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not _NAME.fullmatch(field) or spec or conversion:
            placeholder = "{" + field + (f"!{conversion}" if conversion else "")
            placeholder += (f":{spec}" if spec else "") + "}"
            raise TemplateError(
                f"invalid placeholder {placeholder!r} in {kind} {template!r}: placeholders are "
                f"plain names such as {{instance}} (write {{{{ and }}}} for literal braces)"
            )
        names.append(field)
    return names


def check_template(template: str, available: Sequence[str], kind: str = "command") -> None:
    """Raise TemplateError unless every placeholder in ``template`` is in ``available``."""
    for name in template_fields(template, kind):
        if name not in available:
            raise TemplateError(
                f"unknown placeholder '{{{name}}}' in {kind} {template!r} "
                f"(available: {', '.join(available) or 'none'})"
            )


def substitute(
    template: str, placeholders: Mapping[str, str], kind: str = "command", *, quote: bool = False
) -> str:
    """Replace each ``{name}`` in ``template`` with its value, shell-quoted if ``quote``.

    Raises TemplateError for an unknown or invalid placeholder.
    """
    check_template(template, list(placeholders), kind)

    text = []
    for literal, field, _spec, _conversion in _FORMATTER.parse(template):
        text.append(literal)
        if field is not None:
            value = str(placeholders[field])
            text.append(shlex.quote(value) if quote else value)
    return "".join(text)


def build_argv(
    template: str | Sequence[str], placeholders: Mapping[str, str], *, shell: bool = False
) -> tuple[str, ...]:
    """Return the argument vector for ``template`` with placeholders filled in.

    A string template is split with :func:`shlex.split` before substitution; a sequence
    is taken as the arguments already split. Raises TemplateError for an empty command,
    unbalanced quotes, a sequence in shell mode, or a bad placeholder.
    """
    if shell:
        if not isinstance(template, str):
            raise TemplateError("a command with 'shell: true' must be one string, not a list")
        line = substitute(template, placeholders, quote=True)
        return ("/bin/sh", "-c", line)

    key = template if isinstance(template, str) else tuple(str(part) for part in template)
    parsed = _parse_template(key)
    missing = [name for name in parsed.names if name not in placeholders]
    if missing:
        # Check the template as written, so that the message quotes what the user
        # wrote rather than one argument of it.
        check_template(parsed.source, list(placeholders))
    return tuple(
        "".join(piece if field is None else str(placeholders[field]) for piece, field in part)
        for part in parsed.parts
    )


@dataclass(frozen=True)
class _ParsedTemplate:
    """A command template split into arguments, each a sequence of pieces: a literal
    text with no field, or a placeholder name in ``field``."""

    source: str
    names: frozenset[str]
    parts: tuple[tuple[tuple[str, str | None], ...], ...]


@functools.lru_cache(maxsize=256)
def _parse_template(template: str | tuple[str, ...]) -> _ParsedTemplate:
    """Split and parse ``template`` once: a rolling deploy fills in the same template for
    every instance. Raises TemplateError as :func:`split_template` and
    :func:`template_fields` do."""
    source = template if isinstance(template, str) else shlex.join(template)
    names = frozenset(template_fields(source))

    parts = []
    for argument in split_template(template):
        pieces: list[tuple[str, str | None]] = []
        for literal, field, _spec, _conversion in _FORMATTER.parse(argument):
            if literal:
                pieces.append((literal, None))
            if field is not None:
                pieces.append(("", field))
        parts.append(tuple(pieces))
    return _ParsedTemplate(source, names, tuple(parts))


def split_template(template: str | Sequence[str]) -> list[str]:
    """Split a command template into arguments; raise TemplateError if it has none."""
    if isinstance(template, str):
        try:
            parts = shlex.split(template)
        except ValueError as exc:
            raise TemplateError(f"invalid command {template!r}: {exc}") from exc
    else:
        parts = [str(part) for part in template]

    if not parts:
        raise TemplateError("empty command")
    return parts
