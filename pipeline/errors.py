"""Exceptions that end a command with a clear message and a documented exit code.

Anything raised that is not a :class:`ShiplineError` is a bug and is reported as an
internal error (exit 70) with a crash report.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.diagnostics import Diagnostic, sorted_diagnostics
from pipeline.exitcodes import ExitCode


class ShiplineError(Exception):
    """An expected problem: printed as one message, never with a traceback."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR


class UsageError(ShiplineError):
    """Invalid command line or a pipeline file that cannot be read."""

    exit_code = ExitCode.INVALID


class PipelineError(ShiplineError):
    """One or more problems in a pipeline file, each with its position."""

    exit_code = ExitCode.INVALID

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sorted_diagnostics(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class PluginError(ShiplineError):
    """A plugin could not be loaded or registered; names the plugin and its error."""

    exit_code = ExitCode.INVALID
