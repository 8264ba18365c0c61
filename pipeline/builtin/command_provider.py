"""The ``command`` analysis provider: a command's standard output as the value.

Each measurement runs ``command`` in the pipeline file's folder, without a shell (see
:mod:`pipeline.commands`), and parses its standard output, stripped, as JSON: a number,
a list, a map, ``null`` or ``NaN``, which Python's JSON parser accepts. Empty output is
no data, like ``null`` and NaN in any case (Python's ``print`` writes ``nan``).
Options, besides the common analysis options of :mod:`pipeline.analysis`:

``command`` (required)
    A command line (split like a shell would, without running one) or a list of
    arguments. ``{canary_version}``, ``{stable_version}``, ``{environment}`` and
    ``{NAME}`` for each template argument are filled in after splitting, so a value
    always stays one argument. ``{{ args.NAME }}`` is not used here for that reason.

The measurement's ``timeout`` bounds the command, which is then stopped with its
process group. An exit code other than 0 is a measurement error that shows the last
line of its output. A command that is not found ends the analysis.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.analysis import (
    COMMON_ANALYSIS_PROPERTIES,
    AnalysisError,
    MeasurementRequest,
    ProviderError,
)
from pipeline.schema import StepSchema
from pipeline.templates import TemplateError

if TYPE_CHECKING:
    from pipeline.context import RunContext

PROVIDER = "command"

#: Spellings of NaN that tools other than JSON encoders print (Python's print, printf
#: "%f"). They mean no data.
_NAN_SPELLINGS = frozenset({"nan", "-nan", "+nan"})

#: Characters of output shown in the error for output that is not JSON.
SHOWN_OUTPUT = 80

COMMAND_PROPERTIES: dict[str, Any] = {
    "command": {
        "anyOf": [{"type": "string", "minLength": 1},
                  {"type": "array", "items": {"type": "string"}, "minItems": 1}],
        "title": "Command",
        "description": "Command line or argument list whose standard output (JSON or a "
        "number) is the result; {canary_version}, {stable_version}, {environment} and "
        "{NAME} for each argument are filled in.",
        "examples": ["./scripts/error-rate.sh {canary_version}"],
    },
}


class CommandProviderError(ProviderError):
    """A command that failed or printed something else than JSON; the measurement is an error."""


@dataclass(frozen=True)
class CommandProvider:
    """Runs the command at each measurement; see the module docstring."""

    command: str | tuple[str, ...]
    cwd: Path

    def measure(self, request: MeasurementRequest, cancel: threading.Event) -> dict[str, Any]:
        """Run the command once and return ``{"result": value}``.

        Raises AnalysisError when the command cannot be filled in or is not found, and
        CommandProviderError when it fails or its output is not JSON.
        """
        from pipeline.commands import run_command

        try:
            result = run_command(self.command, dict(request.args), timeout=request.timeout,
                                 cancel=cancel, cwd=self.cwd, announce=False)
        except TemplateError as exc:
            raise AnalysisError(f"invalid 'command': {exc}", "command") from exc
        if result.not_found:
            raise AnalysisError(f"invalid 'command': {result.message}", "command")
        if not result.ok:
            raise CommandProviderError(f"command failed: {result.message}")
        return {"result": parse_output(result.stdout)}


def parse_output(stdout: str) -> Any:
    """Parse a command's output as JSON; empty output is ``None`` (no data).

    Raises CommandProviderError, showing the start of the output, for anything else.
    """
    text = stdout.strip()
    if not text or text.lower() in _NAN_SPELLINGS:
        return None
    try:
        return json.loads(text)
    except ValueError:
        from pipeline.commands import last_line

        shown = last_line(text, SHOWN_OUTPUT)
        raise CommandProviderError(
            f"command printed {shown!r}, expected JSON or a number"
        ) from None


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [
        StepSchema(
            kind="analysis",
            type=PROVIDER,
            schema={"required": ["command"],
                    "properties": {**COMMON_ANALYSIS_PROPERTIES, **COMMAND_PROPERTIES}},
            description="Run a command per measurement; result is its output as JSON.",
        )
    ]


@hookimpl
def shipline_make_provider(
    name: str, options: Mapping[str, Any], context: RunContext
) -> CommandProvider | None:
    if name != PROVIDER:
        return None
    command = options.get("command")
    if isinstance(command, str) and command.strip():
        return CommandProvider(command, context.plan.file.parent)
    if (isinstance(command, Sequence) and not isinstance(command, str) and command
            and all(isinstance(part, str) for part in command)):
        return CommandProvider(tuple(command), context.plan.file.parent)
    raise AnalysisError(
        f"invalid 'command': expected a command line or a list of arguments, got {command!r}",
        "command",
    )
