"""pipeline.refglob: branch and tag globs with GitHub's wildcards."""

from __future__ import annotations

import pytest

from pipeline.refglob import matches, matches_any


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("main", "main", True),
        ("mainline", "main", False),
        ("release/1.4", "release/*", True),
        ("release/1.4/hotfix", "release/*", False),
        ("release/1.4/hotfix", "release/**", True),
        ("v1", "v?", True),
        ("v10", "v?", False),
        ("a/b", "a?b", False),
        ("feature[1]", "feature[1]", True),
        ("feature1", "feature[1]", False),
        ("v1.4", "v1.4", True),
        ("v1x4", "v1.4", False),
        ("Main", "main", False),
    ],
)
def test_matches_cases(name: str, pattern: str, expected: bool) -> None:
    assert matches(name, pattern) is expected


def test_matches_any_empty_list() -> None:
    assert matches_any("main", []) is False
    assert matches_any("main", ["dev", "ma*"]) is True
