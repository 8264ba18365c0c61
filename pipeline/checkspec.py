"""Check specs: the options of an HTTP or command check, their defaults and their schema.

A check spec is a mapping with exactly one key, ``http`` or ``command``, as written in
a pipeline file (``gate`` steps, rolling batch health checks, blue-green promotion
checks). :data:`CHECK_SCHEMA` is its JSON Schema, for plugins to embed in theirs.
:mod:`pipeline.checks` runs checks. This module contains only what validating a
pipeline needs, so ``shipline validate`` does not import the check runner.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.durations import DURATION_PATTERN, parse_duration

#: Maximum wait between two attempts, in seconds.
MAX_BACKOFF = 30.0

HTTP_DEFAULTS: Mapping[str, Any] = {
    "method": "GET", "status": 200, "timeout": 5.0, "retries": 2, "backoff": 1.0,
    "follow_redirects": False,
}
COMMAND_DEFAULTS: Mapping[str, Any] = {
    "timeout": 60.0, "retries": 0, "backoff": 1.0, "shell": False,
}


def _duration(title: str, description: str, default: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": f"{description} A number of seconds or a value like 500ms, 30s, 5m.",
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
        "default": default,
    }


def _retry_properties(retries: int, timeout: str, attempt: str) -> dict[str, Any]:
    return {
        "timeout": _duration("Timeout", f"Time limit of {attempt}.", timeout),
        "retries": {
            "title": "Retries",
            "description": "How many times a failed attempt is repeated before the check "
            "fails; 0 means one attempt only.",
            "type": "integer", "minimum": 0, "default": retries,
        },
        "backoff": _duration(
            "Backoff",
            "Wait before the first retry; each later wait is twice the previous one, "
            f"up to {int(MAX_BACKOFF)} seconds.", "1s",
        ),
    }


_STATUS_CODE = {"type": "integer", "minimum": 100, "maximum": 599}

#: JSON Schema of the options of an HTTP check (``gate: {uses: http, ...}`` and
#: ``{http: {...}}`` in a check list).
HTTP_OPTIONS_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "url": {
            "title": "URL",
            "description": "The URL to request (http or https). Placeholders such as "
            "{instance} are filled in where the caller provides them.",
            "type": "string", "minLength": 1,
        },
        "method": {
            "title": "Method", "description": "The HTTP method.",
            "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            "default": "GET",
        },
        "status": {
            "title": "Expected status",
            "description": "The status code, or list of codes, that passes the check.",
            "anyOf": [_STATUS_CODE, {"type": "array", "items": _STATUS_CODE, "minItems": 1}],
            "default": 200,
        },
        "body_contains": {
            "title": "Body contains",
            "description": "Text the response body must contain (case-sensitive; only the "
            "first MiB of the body is read).",
            "type": "string", "minLength": 1,
        },
        "json": {
            "title": "JSON field",
            "description": "A field of the JSON response body that must exist and, with "
            "'equals', have a given value.",
            "type": "object",
            "properties": {
                "path": {
                    "title": "Path",
                    "description": "Dotted path of the field, such as status or checks.db; "
                    "a number selects a list item (items.0.state).",
                    "type": "string", "minLength": 1,
                },
                "equals": {
                    "title": "Equals",
                    "description": "The value the field must have (any JSON value; "
                    "true and 1 are different).",
                },
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        "headers": {
            "title": "Headers",
            "description": "Request headers. Their values never appear in messages.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "ca_file": {
            "title": "CA file",
            "description": "PEM file of the certificate authorities to trust for https, "
            "relative to the pipeline file's folder; default: the system's.",
            "type": "string", "minLength": 1,
        },
        "follow_redirects": {
            "title": "Follow redirects",
            "description": "Follow 3xx redirects and check the final response. Off by "
            "default, so a redirect to a login page does not pass as healthy.",
            "type": "boolean", "default": False,
        },
        **_retry_properties(2, "5s", "each request, for connecting and for each read"),
    },
    "required": ["url"],
}

#: JSON Schema of the options of a command check (``gate: {uses: command, ...}``).
COMMAND_OPTIONS_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "command": {
            "title": "Command",
            "description": "The command to run; exit code 0 passes. It is split into "
            "arguments like a shell would, but runs without a shell unless 'shell' is true.",
            "type": "string", "minLength": 1,
        },
        "shell": {
            "title": "Shell",
            "description": "Run the command with /bin/sh -c; placeholder values are "
            "shell-quoted.",
            "type": "boolean", "default": False,
        },
        **_retry_properties(0, "60s", "each run of the command"),
    },
    "required": ["command"],
}

#: JSON Schema of one check: ``{http: {...}}``, ``{command: "..."}`` or
#: ``{command: {command: "...", ...}}``.
CHECK_SCHEMA: Mapping[str, Any] = {
    "title": "Check",
    "description": "A health check: an HTTP request or a command, retried with backoff.",
    "type": "object",
    "properties": {
        "http": {
            **HTTP_OPTIONS_SCHEMA,
            "title": "HTTP check",
            "description": "Passes when the response has the expected status (and body).",
            "additionalProperties": False,
        },
        "command": {
            "title": "Command check",
            "description": "Passes when the command exits with code 0: the command "
            "itself, or a mapping with the command and its options.",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {**COMMAND_OPTIONS_SCHEMA, "additionalProperties": False},
            ],
        },
    },
    "oneOf": [{"required": ["http"]}, {"required": ["command"]}],
    "additionalProperties": False,
}


def split_spec(spec: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """Return the kind (``http`` or ``command``) and the options of a check spec.

    A command given as a string becomes ``{"command": <string>}``. Raises ValueError
    for a spec with none or both of the keys, or options of the wrong type.
    """
    kinds = [key for key in ("http", "command") if key in spec]
    if len(kinds) != 1 or len(spec) != 1:
        raise ValueError(
            f"a check needs exactly one key, 'http' or 'command', got {sorted(spec)}"
        )

    kind = kinds[0]
    options = spec[kind]
    if kind == "command" and isinstance(options, str):
        options = {"command": options}
    if not isinstance(options, Mapping):
        raise ValueError(f"the options of a {kind} check must be a mapping")
    return kind, options


def estimate_seconds(spec: Mapping[str, Any]) -> float:
    """Return the longest a check can take: every attempt timing out, plus the waits.

    An estimate for an HTTP check: its timeout applies to connecting and to each read,
    so a server that sends a slow trickle can take longer.
    """
    kind, options = split_spec(spec)
    defaults = HTTP_DEFAULTS if kind == "http" else COMMAND_DEFAULTS
    timeout = parse_duration(options.get("timeout", defaults["timeout"]))
    retries = int(options.get("retries", defaults["retries"]))
    backoff = parse_duration(options.get("backoff", defaults["backoff"]))
    return (retries + 1) * timeout + sum(retry_delays(backoff, retries))


def retry_delays(backoff: float, retries: int) -> Iterator[float]:
    for index in range(retries):
        yield min(backoff * 2**index, MAX_BACKOFF)
