"""Dotenv files for GitLab CI's ``artifacts:reports:dotenv``, within GitLab's rules.

GitLab reads one ``KEY=value`` per line and rejects or changes what its parser does not
support ("Pass an environment variable to another job" in GitLab's CI/CD variables
documentation). So this module:

- names each output ``SHIPLINE_`` plus the output name in upper case, with every
  character other than an ASCII letter, digit or ``_`` replaced by ``_``
  (``deployed-version`` becomes ``SHIPLINE_DEPLOYED_VERSION``), because GitLab accepts
  only those characters in a key;
- leaves out a value that contains a line break, because GitLab does not support
  multi-line values, and reports the output it left out;
- strips spaces and tabs around a value, as GitLab's parser does;
- keeps the file under :data:`MAX_DOTENV_BYTES` and :data:`MAX_DOTENV_VARIABLES`,
  leaving out the last variables that do not fit, and says so in the log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: GitLab's default size limit of a dotenv report, in bytes (instance setting
#: ``dotenv_size``, 5 KiB by default).
MAX_DOTENV_BYTES = 5 * 1024
#: The number of variables that every GitLab plan accepts in one dotenv report. The
#: plan limit ``dotenv_variables`` ranges from 20 to 150 on GitLab.com, so 20 fits
#: every plan.
MAX_DOTENV_VARIABLES = 20
#: GitLab's maximum length of a variable key, in characters.
MAX_KEY_LENGTH = 255
#: The prefix of every key that shipline writes.
PREFIX = "SHIPLINE_"

_NOT_KEY_CHARACTER = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class DotenvFile:
    """The text of a dotenv report and the problems found while building it."""

    text: str = ""
    #: One message per output left out, naming the output and the reason.
    problems: list[str] = field(default_factory=list)


def dotenv_key(name: str) -> str:
    """Return the dotenv key of output ``name``, such as ``SHIPLINE_EXIT_CODE``."""
    return PREFIX + _NOT_KEY_CHARACTER.sub("_", name).upper()


def render_dotenv(outputs: Mapping[str, str]) -> DotenvFile:
    """Build a dotenv report of ``outputs`` in their order; see the module for the rules."""
    result = DotenvFile()
    lines: list[str] = []
    keys: set[str] = set()
    size = 0

    for name, raw in outputs.items():
        key = dotenv_key(name)
        value = raw.strip(" \t")
        problem = _problem(name, key, value, keys, len(lines))
        line = f"{key}={value}\n"
        if problem is None and size + len(line.encode("utf-8")) > MAX_DOTENV_BYTES:
            problem = (f"output {name!r} left out of the dotenv report: the file would "
                       f"exceed GitLab's limit of {MAX_DOTENV_BYTES} bytes")
        if problem is not None:
            result.problems.append(problem)
            continue
        lines.append(line)
        keys.add(key)
        size += len(line.encode("utf-8"))

    result.text = "".join(lines)
    return result


def _problem(name: str, key: str, value: str, keys: set[str], count: int) -> str | None:
    """Return why output ``name`` cannot go into the report, or None when it can."""
    where = f"output {name!r} left out of the dotenv report"
    if "\n" in value or "\r" in value:
        return f"{where}: GitLab does not support values with line breaks"
    if key in keys:
        return f"{where}: its key {key} is already used by another output"
    if len(key) > MAX_KEY_LENGTH:
        return f"{where}: its key is longer than GitLab's limit of {MAX_KEY_LENGTH} characters"
    if count >= MAX_DOTENV_VARIABLES:
        return f"{where}: the report already has {MAX_DOTENV_VARIABLES} variables"
    return None
