"""Glob patterns for branch and tag names, with the wildcards of GitHub's branch filters.

``*`` matches any characters except ``/``, ``**`` matches any characters including
``/``, and ``?`` matches one character except ``/``. Every other character, ``[`` and
``]`` included, matches itself. So ``release/*`` matches ``release/1.4`` but not
``release/1.4/hotfix``, which ``release/**`` matches. Matching is case-sensitive,
because git ref names are.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    while position < len(pattern):
        if pattern.startswith("**", position):
            parts.append(".*")
            position += 2
        elif pattern[position] == "*":
            parts.append("[^/]*")
            position += 1
        elif pattern[position] == "?":
            parts.append("[^/]")
            position += 1
        else:
            parts.append(re.escape(pattern[position]))
            position += 1
    return re.compile("".join(parts), re.DOTALL)


def matches(name: str, pattern: str) -> bool:
    """Tell whether the whole of ``name`` matches the glob ``pattern``."""
    return _compile(pattern).fullmatch(name) is not None


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """Tell whether ``name`` matches at least one of ``patterns``."""
    return any(matches(name, pattern) for pattern in patterns)
