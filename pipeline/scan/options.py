"""The JSON Schema of a scan step's options, shared by every built-in scanner type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.scan.finding import SEVERITIES_DESCENDING
from pipeline.schemamessages import NONBLANK_PATTERN

_PATTERN = {"type": "string", "minLength": 1}
_TEXT = {"type": "string", "pattern": NONBLANK_PATTERN}

#: ``fail_on`` values, most severe first, then ``none`` for no threshold.
FAIL_ON_VALUES = ("critical", "high", "medium", "low", "none")

OPTIONS_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["report"],
    "properties": {
        "report": {
            "title": "Report files",
            "description": "The report file, or a list of them, that a scanner wrote "
            "earlier in the job. Paths are relative to the pipeline file's folder and may "
            "be glob patterns (*, ?, [abc], ** for any folders); each must match a file.",
            "anyOf": [_PATTERN, {"type": "array", "items": _PATTERN, "minItems": 1}],
        },
        "fail_on": {
            "title": "Fail on severity",
            "description": "Block when a finding of this severity or a higher one is "
            "counted; 'none' blocks only through max_count.",
            "enum": list(FAIL_ON_VALUES),
            "default": "high",
        },
        "max_count": {
            "title": "Maximum count per severity",
            "description": "How many findings of a severity may be counted without "
            "blocking; replaces the limit of 0 that fail_on sets for that severity. "
            "'unknown' is the only way to limit findings without a severity.",
            "type": "object",
            "properties": {
                severity.label: {"type": "integer", "minimum": 0}
                for severity in SEVERITIES_DESCENDING
            },
            "additionalProperties": False,
        },
        "only_fixed": {
            "title": "Only fixed",
            "description": "Leave out findings for which the report names no fix.",
            "type": "boolean",
            "default": False,
        },
        "ignore": {
            "title": "Ignore list",
            "description": "Findings not to count, by vulnerability or rule id (aliases "
            "match too), each with the reason and optionally the last day it applies.",
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "reason"],
                "properties": {
                    "id": {"description": "The id or an alias, such as CVE-2021-44228.",
                           **_TEXT},
                    "reason": {"description": "Why the finding is accepted; shown in the "
                               "report.", **_TEXT},
                    "expires": {
                        "description": "The last day (UTC) the entry applies, as "
                        "YYYY-MM-DD. After it, the finding counts again and the report "
                        "warns.",
                        "type": "string",
                        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                    },
                },
                "additionalProperties": False,
            },
        },
    },
}
