"""A scripted metric provider for analysis tests: one reply per measurement."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pipeline
from pipeline.analysis import MeasurementRequest
from pipeline.clock import FakeClock
from pipeline.config import Config
from pipeline.context import RunContext
from pipeline.plan import Plan, freeze
from pipeline.plugins import PluginRegistry


class ScriptedProvider:
    """Returns the next reply on each measurement and repeats the last one.

    A reply that is an exception is raised. ``options`` keeps the options that each
    provider creation received, arguments substituted.
    """

    def __init__(self, replies: Sequence[Any]) -> None:
        self.replies = list(replies)
        self.requests: list[MeasurementRequest] = []
        self.options: list[Mapping[str, Any]] = []

    def measure(self, request: MeasurementRequest, cancel: threading.Event) -> Any:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return reply

    @pipeline.hookimpl
    def shipline_make_provider(
        self, name: str, options: Mapping[str, Any], context: RunContext
    ) -> ScriptedProvider | None:
        if name != "scripted":
            return None
        self.options.append(options)
        return self


def provider_context(
    analyses: Mapping[str, Any], provider: ScriptedProvider, file: Path = Path("shipline.yml")
) -> RunContext:
    """Return a run context whose plan has ``analyses`` and whose plugins have ``provider``."""
    registry = PluginRegistry()
    registry.register(provider, name="scripted-provider", origin="test")
    config = Config(options=argparse.Namespace(), registry=registry, clock=FakeClock())
    plan = Plan(name="test", file=file, stages=(), environments={},
                analyses=freeze(dict(analyses)), notifications=(), state={})
    return RunContext(plan, config)
