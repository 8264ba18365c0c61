"""What happens when an analysis does not pass: the policies ``on_failure``,
``on_inconclusive`` and ``on_no_data``.

Each policy is one of:

``abort``
    Fail the step, so that the deploy rolls back.
``pass``
    Go on as if the analysis (or the measurement) were successful; the report keeps
    the real verdict.
``pause`` or ``{pause: {file, env, timeout, interval, default}}``
    Wait for a person to approve, with the file or environment flag of
    :mod:`pipeline.approval`. Approved means ``pass``. When ``timeout`` (default 1h)
    passes first, the ``default`` action applies: ``abort`` (default) or ``pass``. The
    plain ``pause``, and a pause mapping without ``file``, ``env`` or ``signed``, waits
    for the file ``.shipline/approve-NAME`` beside the pipeline file, where NAME is the
    analysis name with other characters than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``-``.
``{retry: N}``
    Run the analysis again, up to N more times (for ``on_no_data``: take the
    measurement again, up to N more times in a row); ``abort`` when the retries are
    used up.

``on_no_data`` applies to each measurement whose conditions cannot be decided because
a value has no data, and has one more action, ``inconclusive`` (the default): count the
measurement as inconclusive. Defaults: ``on_failure: abort``, ``on_inconclusive:
pause``, ``on_no_data: inconclusive``. An analysis that ends with ``error`` always
aborts, as an Argo Rollouts analysis run with the phase Error aborts its rollout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.analysismodel import AnalysisError
from pipeline.approval import APPROVAL_SCHEMA, ApprovalSpec
from pipeline.errors import ShiplineError

__all__ = [
    "ABORT",
    "INCONCLUSIVE_ACTION",
    "PASS",
    "PAUSE",
    "POLICY_KEYS",
    "RETRY",
    "Policies",
    "Policy",
    "policy_schema",
]

ABORT = "abort"
PASS = "pass"  # noqa: S105 - a policy action, not a password
PAUSE = "pause"
RETRY = "retry"
#: The ``on_no_data`` action that counts the measurement as inconclusive.
INCONCLUSIVE_ACTION = "inconclusive"

#: The policy options, which a use of a template may also set to override the template.
POLICY_KEYS = ("on_failure", "on_inconclusive", "on_no_data")

_DEFAULT_ACTIONS = (ABORT, PASS)


@dataclass(frozen=True)
class Policy:
    """One parsed policy: its action, the retries of ``retry``, and the pause's approval."""

    action: str
    retries: int = 0
    approval: ApprovalSpec | None = None
    #: The action after a pause that was not approved in time: ``abort`` or ``pass``.
    default: str = ABORT

    def describe(self) -> str:
        """Return the policy as it is written in the pipeline file, for messages."""
        if self.action == RETRY:
            return f"retry: {self.retries}"
        return self.action

    @classmethod
    def parse(cls, value: Any, key: str, analysis: str, *, no_data: bool = False) -> Policy:
        """Parse the policy ``value`` of option ``key``.

        Raises AnalysisError, with ``key`` set, for an unknown action, a retry count
        below 1, or an invalid pause.
        """
        actions = [ABORT, PASS, PAUSE, *([INCONCLUSIVE_ACTION] if no_data else [])]
        if isinstance(value, str) and value in actions:
            if value == PAUSE:
                return cls(PAUSE, approval=ApprovalSpec(file=default_approval_file(analysis)))
            return cls(value)
        if isinstance(value, Mapping) and len(value) == 1 and RETRY in value:
            return cls._retry(value[RETRY], key)
        if isinstance(value, Mapping) and len(value) == 1 and PAUSE in value:
            return cls._pause(value[PAUSE], key, analysis)

        choices = ", ".join(actions)
        raise AnalysisError(
            f"invalid {key!r}: expected {choices}, {{retry: N}} or {{pause: {{...}}}}, "
            f"got {value!r}",
            key,
        )

    @classmethod
    def _retry(cls, count: Any, key: str) -> Policy:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise AnalysisError(
                f"invalid {key!r}: retry needs a count of 1 or more, got {count!r}", key
            )
        return cls(RETRY, retries=count)

    @classmethod
    def _pause(cls, spec: Any, key: str, analysis: str) -> Policy:
        """Parse ``{pause: spec}``; without ``file``, ``env`` or ``signed`` it waits for
        the plain pause's file, so that ``{pause: {timeout: 5m}}`` only shortens the wait."""
        if not isinstance(spec, Mapping):
            raise AnalysisError(f"invalid {key!r}: pause needs a mapping of approval "
                                f"options such as 'file', 'env' or 'timeout', got {spec!r}",
                                key)
        default = spec.get("default", ABORT)
        if default not in _DEFAULT_ACTIONS:
            raise AnalysisError(
                f"invalid {key!r}: the default action of a pause must be abort or pass, "
                f"got {default!r}",
                key,
            )
        approval = {name: value for name, value in spec.items() if name != "default"}
        if not any(approval.get(way) for way in ("file", "env", "signed")):
            approval["file"] = default_approval_file(analysis)
        try:
            parsed = ApprovalSpec.parse(approval, f"{key}.pause")
        except ShiplineError as exc:
            raise AnalysisError(str(exc), key) from exc
        return cls(PAUSE, approval=parsed, default=default)


@dataclass(frozen=True)
class Policies:
    """The three policies of one analysis."""

    on_failure: Policy
    on_inconclusive: Policy
    on_no_data: Policy

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> Policies:
        """Parse the policy options of analysis ``name``; absent ones get their defaults."""
        return cls(
            on_failure=_policy(options, "on_failure", name, Policy(ABORT)),
            on_inconclusive=_policy(
                options, "on_inconclusive", name,
                Policy(PAUSE, approval=ApprovalSpec(file=default_approval_file(name))),
            ),
            on_no_data=_policy(options, "on_no_data", name, Policy(INCONCLUSIVE_ACTION),
                               no_data=True),
        )

    def worst_case_seconds(self) -> float:
        """Return the longest wait for approval that these policies can add."""
        pauses = [p.approval.timeout for p in (self.on_failure, self.on_inconclusive)
                  if p.approval is not None]
        return max(pauses, default=0.0)


def _policy(
    options: Mapping[str, Any], key: str, name: str, default: Policy, *, no_data: bool = False
) -> Policy:
    if key not in options:
        return default
    return Policy.parse(options[key], key, name, no_data=no_data)


def default_approval_file(analysis: str) -> str:
    """Return the approval file of a plain ``pause``, relative to the pipeline file."""
    return f".shipline/approve-{re.sub(r'[^A-Za-z0-9._-]', '-', analysis)}"


def policy_schema(*, no_data: bool = False) -> dict[str, Any]:
    """Return the JSON Schema of one policy option."""
    actions = [ABORT, PASS, PAUSE, *([INCONCLUSIVE_ACTION] if no_data else [])]
    # Without "file", "env" or "signed", a pause waits for the plain pause's file.
    pause = {
        **{key: value for key, value in APPROVAL_SCHEMA.items() if key != "anyOf"},
        "properties": {
            **APPROVAL_SCHEMA["properties"],
            "default": {
                "enum": list(_DEFAULT_ACTIONS),
                "title": "Default action",
                "description": "What happens when the timeout passes without approval "
                "(default abort).",
            },
        },
    }
    return {
        "oneOf": [
            {"enum": actions},
            {
                "type": "object",
                "additionalProperties": False,
                "required": [RETRY],
                "properties": {"retry": {"type": "integer", "minimum": 1}},
            },
            {
                "type": "object",
                "additionalProperties": False,
                "required": [PAUSE],
                "properties": {"pause": pause},
            },
        ],
    }
