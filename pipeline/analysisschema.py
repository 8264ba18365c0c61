"""JSON Schema of analysis options: the options common to every provider, and the value
that names a template or contains an inline analysis.

A provider's own options come from its schema fragment (kind ``analysis``), which includes
:data:`COMMON_ANALYSIS_PROPERTIES`.
"""

from __future__ import annotations

from typing import Any

from pipeline.analysispolicy import policy_schema
from pipeline.durations import DURATION_PATTERN

__all__ = ["ANALYSIS_REF_SCHEMA", "COMMON_ANALYSIS_PROPERTIES"]

_DURATION_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "minimum": 0,
    "pattern": DURATION_PATTERN,
}

_CONDITIONS_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
}

#: JSON Schema properties of the options every analysis provider accepts. A provider's
#: fragment includes them: ``{"properties": {**COMMON_ANALYSIS_PROPERTIES, ...}}``.
COMMON_ANALYSIS_PROPERTIES: dict[str, Any] = {
    "interval": {
        **_DURATION_SCHEMA,
        "title": "Interval",
        "description": "Time from the end of one measurement to the start of the next "
        "(default 60s). After an error the retry waits this long, or 10s when unset.",
    },
    "count": {
        "type": "integer",
        "minimum": 1,
        "title": "Count",
        "description": "Number of measurements to take (default 1). Measurements with "
        "an error do not count.",
    },
    "initial_delay": {
        **_DURATION_SCHEMA,
        "title": "Initial delay",
        "description": "Time to wait before the first measurement (default 0).",
    },
    "failure_limit": {
        "type": "integer",
        "minimum": 0,
        "title": "Failure limit",
        "description": "The analysis fails when more measurements than this fail (default 0).",
    },
    "inconclusive_limit": {
        "type": "integer",
        "minimum": 0,
        "title": "Inconclusive limit",
        "description": "The analysis is inconclusive when more measurements than this "
        "are inconclusive (default 0).",
    },
    "consecutive_error_limit": {
        "type": "integer",
        "minimum": 0,
        "title": "Consecutive error limit",
        "description": "The analysis ends with an error when more measurements than "
        "this in a row have errors (default 4).",
    },
    "success": {
        **_CONDITIONS_SCHEMA,
        "title": "Success condition",
        "description": "A condition such as `success_rate >= 0.99`, or a list of them "
        "that must all hold, for a measurement to be successful.",
        "examples": ["success_rate >= 0.99", ["success_rate >= 0.99", "p95_ms <= 300"]],
    },
    "failure": {
        **_CONDITIONS_SCHEMA,
        "title": "Failure condition",
        "description": "A condition such as `error_rate > 0.05`, or a list of them of "
        "which any one makes a measurement fail.",
        "examples": ["error_rate > 0.05"],
    },
    "timeout": {
        **_DURATION_SCHEMA,
        "title": "Timeout",
        "description": "The longest one measurement may take (default 60s); a "
        "measurement still running then counts as an error.",
    },
    "args": {
        "type": "object",
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "additionalProperties": {"type": ["string", "number", "null"]},
        "title": "Arguments",
        "description": "Arguments of the template and their defaults; null marks a "
        "required one. String options refer to them as `{{ args.NAME }}`, conditions "
        "as `args.NAME`.",
        "examples": [{"service": None, "max_error_rate": "0.01"}],
    },
    "on_failure": {
        **policy_schema(),
        "title": "On failure",
        "description": "What a failed analysis does: abort (default), pass, pause or "
        "{retry: N}.",
    },
    "on_inconclusive": {
        **policy_schema(),
        "title": "On inconclusive",
        "description": "What an inconclusive analysis does: pause (default) for approval, "
        "abort, pass or {retry: N}.",
    },
    "on_no_data": {
        **policy_schema(no_data=True),
        "title": "On no data",
        "description": "What a measurement whose conditions lack data counts as: "
        "inconclusive (default), pass, abort, pause or {retry: N}.",
    },
}

#: JSON Schema of the ``args`` that a use gives to a template.
_USE_ARGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number"]},
    "title": "Arguments",
    "description": "Values of the template's arguments.",
}

_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"

#: JSON Schema of a value that names or contains an analysis, such as a canary step's
#: ``analysis``: a template name, or an inline analysis. The common options of an inline
#: analysis are checked here; its provider's own options are checked by the
#: ``shipline_check_plan`` hook of :mod:`pipeline.analysis` against the provider's fragment.
ANALYSIS_REF_SCHEMA: dict[str, Any] = {
    "title": "Analysis",
    "description": "The name of a template under `analyses:`, a template with "
    "arguments (`{template: NAME, args: {...}}`), or an inline analysis with a "
    "`provider` and its options.",
    "oneOf": [
        {
            "type": "string",
            "pattern": _NAME_PATTERN,
            "title": "Template name",
            "description": "The name of an analysis template under `analyses:`.",
        },
        {
            "type": "object",
            "required": ["template"],
            "additionalProperties": False,
            "title": "Template with arguments",
            "description": "A template under `analyses:`, with values for its arguments "
            "and, optionally, policies that replace the template's.",
            "properties": {
                "template": {"type": "string", "pattern": _NAME_PATTERN,
                             "title": "Template", "description": "The template's name."},
                "args": _USE_ARGS_SCHEMA,
                "on_failure": COMMON_ANALYSIS_PROPERTIES["on_failure"],
                "on_inconclusive": COMMON_ANALYSIS_PROPERTIES["on_inconclusive"],
                "on_no_data": COMMON_ANALYSIS_PROPERTIES["on_no_data"],
            },
        },
        {
            "type": "object",
            "required": ["provider"],
            "not": {"required": ["template"]},
            "title": "Inline analysis",
            "description": "An analysis written in place: `provider` and its options.",
            "properties": {
                "provider": {
                    "type": "string",
                    "title": "Provider",
                    "description": "Name of the analysis plugin, for example `probe`.",
                },
                **COMMON_ANALYSIS_PROPERTIES,
            },
        },
    ],
}
