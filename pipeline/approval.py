"""Manual approvals that a deploy waits for: a file that appears, or an environment flag.

A blue-green deploy with ``auto_promote: false`` and a canary ``pause: {until_approved:
...}`` both stop here until a person approves. An approval spec names a ``file``, an
``env`` variable, or both:

- the file approves as soon as it exists. A relative path is resolved against the
  folder of the pipeline file, so ``touch approvals/prod`` in the checkout works;
- the variable approves when its value is ``true`` or ``1`` (any case). shipline reads
  its own environment, which cannot change while it runs, so the variable serves to
  approve ahead of time, for example from a CI variable set on a manual job.

A spec with ``signed`` instead waits for approval documents signed by enough approvers
(:mod:`pipeline.signedapproval`). It cannot be combined with the plain ``file`` and
``env`` flags, which anyone who can write the file or set the variable could satisfy.

The wait is polled every ``interval`` through the run's clock, so it can be interrupted
and tests run it in no time. When ``timeout`` passes first, the result is "not approved"
and the caller fails its step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.context import Interrupted
from pipeline.durations import DURATION_PATTERN, format_duration, parse_duration
from pipeline.errors import ShiplineError
from pipeline.signedapproval import SIGNED_SCHEMA, RunFacts, SignedSpec, check_signed

if TYPE_CHECKING:
    from pipeline.context import RunContext

logger = logging.getLogger("shipline")

#: Seconds to wait for an approval when the spec gives no ``timeout`` (one hour).
DEFAULT_TIMEOUT = 3600.0

#: Seconds between two looks at the file and the variable when the spec gives no ``interval``.
DEFAULT_INTERVAL = 1.0

#: Values of the ``env`` variable that approve, compared without regard to case.
APPROVING_VALUES = frozenset({"true", "1"})

_DURATION = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "number", "minimum": 0},
    ],
}

#: JSON Schema of an approval spec; strategies embed it in their option fragments.
APPROVAL_SCHEMA: dict[str, Any] = {
    "title": "Approval",
    "description": "Wait until a file exists or an environment variable is true.",
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["file"]}, {"required": ["env"]}, {"required": ["signed"]}],
    "properties": {
        "signed": SIGNED_SCHEMA,
        "file": {
            "title": "Approval file",
            "description": "Approve when this file exists. A relative path is resolved "
            "against the folder of the pipeline file.",
            "type": "string",
            "minLength": 1,
        },
        "env": {
            "title": "Approval variable",
            "description": "Approve when this environment variable is 'true' or '1'.",
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
        },
        "timeout": {
            **_DURATION,
            "title": "Approval timeout",
            "description": "How long to wait before the deploy fails as not approved "
            "(default 1h).",
        },
        "interval": {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "title": "Poll interval",
            "description": "Time between two looks at the file and the variable, more than 0 "
            "(default 1s).",
        },
    },
}


@dataclass(frozen=True)
class ApprovalSpec:
    """A parsed approval spec; ``timeout`` and ``interval`` are in seconds."""

    file: str | None = None
    env: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    interval: float = DEFAULT_INTERVAL
    signed: SignedSpec | None = None

    @classmethod
    def parse(cls, value: Mapping[str, Any], option: str = "approval") -> ApprovalSpec:
        """Build a spec from pipeline options; raise ShiplineError naming ``option`` if invalid."""
        if not isinstance(value, Mapping):
            raise ShiplineError(f"{option}: expected a mapping with 'file' or 'env'")
        file = value.get("file")
        env = value.get("env")
        signed = None
        if value.get("signed") is not None:
            if file or env:
                raise ShiplineError(
                    f"{option}: 'signed' cannot be combined with 'file' or 'env', which "
                    f"approve without a signature; move them under 'signed'"
                )
            signed = SignedSpec.parse(value["signed"], f"{option}.signed")
        elif not file and not env:
            raise ShiplineError(f"{option}: give a 'file' or an 'env' variable to wait for")

        interval = _duration(value, "interval", DEFAULT_INTERVAL, option)
        if interval <= 0:
            raise ShiplineError(f"{option}.interval: must be more than 0 seconds")
        return cls(
            file=str(file) if file else None,
            env=str(env) if env else None,
            timeout=_duration(value, "timeout", DEFAULT_TIMEOUT, option),
            interval=interval,
            signed=signed,
        )

    def describe(self) -> str:
        """Return what a person must do to approve, for messages."""
        if self.signed is not None:
            return self.signed.describe()
        ways = []
        if self.file:
            ways.append(f"create {self.file}")
        if self.env:
            ways.append(f"set {self.env}=true")
        return " or ".join(ways)


@dataclass(frozen=True)
class ApprovalResult:
    """Whether the approval came, how (``message``), and after how many seconds."""

    approved: bool
    message: str
    waited: float = 0.0


def wait_for_approval(
    spec: Mapping[str, Any] | ApprovalSpec, context: RunContext
) -> ApprovalResult:
    """Poll the file and the variable of ``spec`` until one approves or the timeout passes.

    Returns an unapproved result after the timeout. Raises :class:`Interrupted` when
    the run is cancelled while waiting, and ShiplineError for an invalid spec.
    """
    parsed = spec if isinstance(spec, ApprovalSpec) else ApprovalSpec.parse(spec)
    base = context.plan.file.parent
    started = context.clock.monotonic()
    logger.info("waiting up to %s for approval: %s", format_duration(parsed.timeout),
                parsed.describe())
    checker = _Checker(parsed, base, context)
    if checker.reason() is None:
        waiting = (f"waiting up to {format_duration(parsed.timeout)} for approval: "
                   f"{parsed.describe()}")
        context.progress(waiting)
        context.notify_paused(waiting)

    while True:
        waited = context.clock.monotonic() - started
        reason = checker.reason()
        if reason is not None:
            logger.info("approved after %s: %s", format_duration(waited), reason)
            return ApprovalResult(True, f"approved: {reason}", waited)

        remaining = parsed.timeout - waited
        if remaining <= 0:
            message = (f"not approved within {format_duration(parsed.timeout)}: "
                       f"{parsed.describe()} to approve")
            if checker.last_summary:
                message = f"{message} ({checker.last_summary})"
            logger.warning("%s", message)
            return ApprovalResult(False, message, waited)

        if not context.sleep(min(parsed.interval, remaining)):
            raise Interrupted("interrupted while waiting for approval")


class _Checker:
    """Looks at the approval sources of one wait, and remembers what it last logged."""

    def __init__(self, spec: ApprovalSpec, base: Path, context: RunContext) -> None:
        self.spec = spec
        self.base = base
        self.context = context
        self.last_summary = ""

    def reason(self) -> str | None:
        """Return why the spec is approved now, or ``None`` if it is not."""
        spec = self.spec
        if spec.signed is not None:
            return self._signed_reason(spec.signed)
        if spec.file:
            path = self.base / spec.file
            if path.exists():
                return f"{spec.file} exists"
        if spec.env:
            value = os.environ.get(spec.env, "")
            if value.strip().lower() in APPROVING_VALUES:
                return f"{spec.env} is {value.strip()!r}"
        return None

    def _signed_reason(self, signed: SignedSpec) -> str | None:
        """Count the signed approvals; log the rejected ones whenever they change."""
        status = check_signed(signed, run_facts(signed, self.context), self.base)
        summary = status.summary()
        if status.rejected and summary != self.last_summary:
            logger.warning("signed approvals: %s", summary)
        self.last_summary = summary
        return summary if status.approved else None


def run_facts(spec: SignedSpec, context: RunContext) -> RunFacts:
    """Return what approvals must name in this run; raise ShiplineError if unknown."""
    version = spec.version or context.version
    if context.environment is None or version is None:
        raise ShiplineError(
            "signed approvals need the environment and the version: run the approval in "
            "a stage with an environment, after the deploy step or with 'signed.version'"
        )
    return RunFacts(context.plan.name, context.environment.name, version,
                    context.clock.time())


def _duration(value: Mapping[str, Any], key: str, default: float, option: str) -> float:
    if key not in value:
        return default
    try:
        return parse_duration(value[key])
    except ValueError as exc:
        raise ShiplineError(f"{option}.{key}: {exc}") from exc
