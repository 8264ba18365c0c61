"""Find and hide database passwords in connection URLs and libpq key/value strings.

A password can sit in three places of a state location: the user information of a URL
(``postgresql://USER:PASSWORD@HOST/DB``), a ``password`` query parameter
(``postgresql://USER@HOST/DB?password=PASSWORD``), or a libpq key/value string
(``host=HOST password=PASSWORD``). Messages, logs and crash reports show each as
``***``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

#: The text that replaces a password.
REDACTED = "***"

# The user information of any URL in free text: scheme://user:PASSWORD@.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)([^\s@/]+)(@)")

# A password parameter of a query string or of a libpq key/value string, the value
# either in single quotes (libpq) or up to the next separator.
_PASSWORD_PARAMETER = re.compile(
    r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;'\"]+)", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """Return ``url`` with its password, in the user information or in the query
    string, replaced by ``***``; ``(invalid URL)`` when ``url`` cannot be split."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"

    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:{REDACTED}@{host}")
    if parts.query:
        parts = parts._replace(query=_PASSWORD_PARAMETER.sub(_hide_parameter, parts.query))
    return urlunsplit(parts)


def redact_passwords(text: str) -> str:
    """Replace every URL or key/value password in free text, such as a command line or
    a traceback, with ``***``."""
    text = _USERINFO.sub(lambda match: f"{match[1]}{REDACTED}{match[3]}", text)
    return _PASSWORD_PARAMETER.sub(_hide_parameter, text)


def find_passwords(text: str) -> list[str]:
    """Return the passwords that ``text`` contains, as written and percent-decoded.

    The caller registers them with the run's Masker, so that a message that quotes
    the password in another form (a driver error, a decoded URL) is masked too.
    """
    found: list[str] = []
    for match in _USERINFO.finditer(text):
        found.append(match[2])
    for match in _PASSWORD_PARAMETER.finditer(text):
        value = match[2]
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = value[1:-1]
        found.append(value)
    decoded = [unquote(value) for value in found]
    return list(dict.fromkeys(found + decoded))


def _hide_parameter(match: re.Match[str]) -> str:
    return f"{match[1]}{REDACTED}"
