"""Errors that the rollout helpers and the strategies raise to end a deploy step."""

from __future__ import annotations

from pipeline.errors import ShiplineError


class OptionError(ShiplineError):
    """An option of a deploy step has a value that the strategy cannot use."""


class StepFailed(ShiplineError):
    """Raised inside a strategy to end its step as FAILED with the message given."""
