"""Validation of the URL and command templates of checks and gates, for ``shipline validate``.

A check's URL or command may contain ``{name}`` placeholders that are filled in when it
runs. A misspelt placeholder (``{vesion}``) or a URL without a scheme would otherwise
fail only at run time, after earlier stages have deployed. The placeholders a template
may use depend on where it runs, so each caller passes the names it provides.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pipeline.templates import TemplateError, check_template

#: Placeholders of the checks inside a deploy step. Which ones a given check gets
#: depends on the strategy and the moment, so validation accepts any of them.
DEPLOY_CHECK_PLACEHOLDERS = ("instance", "version", "slot", "endpoint")

#: Placeholders of the ``http`` and ``command`` gates.
GATE_PLACEHOLDERS = ("environment", "version")


def template_problems(
    kind: str, options: Any, available: Sequence[str]
) -> list[tuple[str, str]]:
    """Return ``(option, message)`` for each problem in the templates of a check.

    ``kind`` is ``http`` or ``command`` and ``options`` the check's options (for a
    command, also a plain string). Problems: an unknown or invalid placeholder, and a
    URL that does not start with ``http://`` or ``https://`` or with a placeholder.
    """
    if kind == "command":
        command = options.get("command") if isinstance(options, Mapping) else options
        return _command_problems(command, available)
    if kind == "http" and isinstance(options, Mapping):
        return _url_problems(options.get("url"), available)
    return []


def _command_problems(command: Any, available: Sequence[str]) -> list[tuple[str, str]]:
    if isinstance(command, str):
        parts = [command]
    elif isinstance(command, Sequence):
        parts = [str(part) for part in command]
    else:
        return []

    for part in parts:
        try:
            check_template(part, available)
        except TemplateError as exc:
            return [("command", str(exc))]
    return []


def _url_problems(url: Any, available: Sequence[str]) -> list[tuple[str, str]]:
    if not isinstance(url, str):
        return []
    try:
        check_template(url, available, kind="URL")
    except TemplateError as exc:
        return [("url", str(exc))]

    # A URL that starts with a placeholder ({endpoint}) gets its scheme from the value.
    if not url.startswith("{") and not url.lower().startswith(("http://", "https://")):
        return [("url", f"URL {url!r} does not start with http:// or https://")]
    return []


def check_specs(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[
    tuple[tuple[str | int, ...], str, Any]
]:
    """Yield ``(path, kind, options)`` for every check spec nested in ``value``.

    A check spec is a mapping with the single key ``http`` (whose value is a mapping)
    or ``command`` (a mapping or a string), as in a deploy step's health checks.
    """
    if isinstance(value, Mapping):
        if len(value) == 1:
            [(key, options)] = value.items()
            if (key == "http" and isinstance(options, Mapping)) or (
                key == "command" and isinstance(options, (Mapping, str))
            ):
                yield (*path, key), key, options
                return
        for key, item in value.items():
            yield from check_specs(item, (*path, key))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for index, item in enumerate(value):
            yield from check_specs(item, (*path, index))
