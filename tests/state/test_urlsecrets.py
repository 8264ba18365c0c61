"""Passwords in state URLs and libpq strings: found for the masker, hidden in text."""

from __future__ import annotations

import pytest

from pipeline.state.urlsecrets import find_passwords, redact_passwords, redact_url


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://deploy:s3cret@db:5432/x?sslmode=require",
     "postgresql://deploy:***@db:5432/x?sslmode=require"),
    ("postgresql://deploy@db/x?password=hunter2",
     "postgresql://deploy@db/x?password=***"),
    ("postgresql://db/x?user=deploy&password=hunter2&sslmode=require",
     "postgresql://db/x?user=deploy&password=***&sslmode=require"),
    ("postgresql://db/x?PASSWORD=hunter2", "postgresql://db/x?PASSWORD=***"),
    ("postgresql://deploy@db/x", "postgresql://deploy@db/x"),
])
def test_urlsecrets_redact_url(url: str, expected: str):
    assert redact_url(url) == expected


def test_urlsecrets_redact_passwords_in_free_text():
    text = ("arguments: history prod --state postgresql://u:hunter2@127.0.0.1:1/nodb "
            "--other postgres://a:b%40c@h/d?password=pw host=h password='two words'")

    assert redact_passwords(text) == (
        "arguments: history prod --state postgresql://u:***@127.0.0.1:1/nodb "
        "--other postgres://a:***@h/d?password=*** host=h password=***"
    )


def test_urlsecrets_find_passwords_decodes():
    found = find_passwords("postgresql://u:b%40d@h/x?password=q%26r host=h password='x y'")

    assert found == ["b%40d", "q%26r", "x y", "b@d", "q&r"]


def test_urlsecrets_find_passwords_none():
    assert find_passwords("postgresql://deploy@db/x?sslmode=require") == []
    assert find_passwords("state.db") == []
