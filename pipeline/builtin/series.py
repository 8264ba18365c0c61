"""Series for ``judge: compare`` analyses: the ``recorded`` provider, and series from a
command for the ``command`` provider.

``recorded`` reads series from a JSON file (``file``, relative to the pipeline file)
or from the analysis itself (``data``), so that a judgment runs without any metrics
server: in tests, and to rehearse a judge configuration on series exported from
production. Both hold a mapping from a query, after ``{version}`` and ``{group}`` are
replaced, to a list of points. A point is a number, ``null`` (no data), or a pair
``[unix_seconds, value]``; pairs outside the judged window are left out. A query that
the data does not contain is an error naming the query.

For a ``judge: compare`` analysis with ``provider: command``, ``command`` is a list of
arguments, or a string split into arguments like a POSIX shell would (without running a
shell). ``{query}``,
``{version}``, ``{group}``, ``{start}`` and ``{end}`` (Unix seconds) in each argument
are replaced. The command's standard output is a JSON list of points, as above, or one
number per line (``NaN`` or an empty line for no data). A non-zero exit status or output
of another form is an error that names the command's first argument.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.analysis import COMMON_ANALYSIS_PROPERTIES, AnalysisError, ProviderError
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.analysismodel import MeasurementRequest
    from pipeline.context import RunContext
    from pipeline.judgerun import SeriesRequest

__all__ = [
    "RECORDED",
    "CommandSeries",
    "RecordedSeries",
    "parse_output",
    "parse_points",
    "shipline_make_provider",
    "shipline_step_schemas",
]

logger = logging.getLogger("shipline")

RECORDED = "recorded"

#: Characters of a failed command's standard error kept in the error message.
MAX_STDERR = 300

_POINTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "oneOf": [
            {"type": ["number", "null"]},
            {
                "type": "array",
                "prefixItems": [{"type": "number"}, {"type": ["number", "null"]}],
                "minItems": 2,
                "maxItems": 2,
            },
        ],
    },
}

_RECORDED_SCHEMA: dict[str, Any] = {
    "properties": {
        **COMMON_ANALYSIS_PROPERTIES,
        "file": {
            "type": "string",
            "minLength": 1,
            "title": "Series file",
            "description": "JSON file, relative to the pipeline file, mapping each query "
            "to its points.",
        },
        "data": {
            "type": "object",
            "title": "Series",
            "description": "Queries mapped to their points, written in place.",
            "additionalProperties": _POINTS_SCHEMA,
        },
    },
    "oneOf": [{"required": ["file"]}, {"required": ["data"]}],
}


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [
        StepSchema(
            "analysis", RECORDED, _RECORDED_SCHEMA, plugin="series",
            description="Recorded series for a `judge: compare` analysis, from a JSON "
            "file or written in place.",
        )
    ]


# tryfirst: the plugin of the measuring ``command`` provider must not return first for a
# judge analysis, because its providers cannot fetch series.
@hookimpl(tryfirst=True)
def shipline_make_provider(
    name: str, options: Mapping[str, Any], context: RunContext
) -> object | None:
    if name == RECORDED:
        return RecordedSeries(_load_data(options, Path(context.plan.file).resolve().parent))
    from pipeline.judge import is_comparison

    if name == "command" and is_comparison(options):
        return CommandSeries(options.get("command"))
    return None


# -- recorded ----------------------------------------------------------------------------


def _load_data(options: Mapping[str, Any], base_dir: Path) -> Mapping[str, Any]:
    """Read the series of a ``recorded`` analysis; raises AnalysisError naming the file."""
    if "data" in options:
        data = options["data"]
        if not isinstance(data, Mapping):
            raise AnalysisError("invalid 'data': expected a mapping of queries to points",
                                "data")
        return data

    file = options.get("file")
    if not isinstance(file, str):
        raise AnalysisError("the 'recorded' provider needs 'file' or 'data'", "file")
    path = base_dir / file
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AnalysisError(f"cannot read series file {path}: {exc.strerror}", "file") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnalysisError(f"series file {path} is not valid JSON: {exc}", "file") from exc
    if not isinstance(loaded, Mapping):
        raise AnalysisError(
            f"series file {path} must contain a JSON object mapping queries to points",
            "file",
        )
    return loaded


class RecordedSeries:
    """Series looked up by query in recorded data."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def measure(
        self, request: MeasurementRequest, cancel: threading.Event
    ) -> Mapping[str, float | None]:
        raise AnalysisError(
            f"analysis {request.analysis!r}: the 'recorded' provider only serves "
            f"'judge: compare' analyses"
        )

    def fetch_series(
        self, request: SeriesRequest, cancel: threading.Event
    ) -> list[float | None]:
        if request.query not in self.data:
            known = ", ".join(repr(key) for key in sorted(self.data)) or "none"
            raise AnalysisError(
                f"recorded series have no query {request.query!r} (metric "
                f"{request.metric!r}, {request.group}); recorded queries: {known}"
            )
        return parse_points(self.data[request.query], request, f"query {request.query!r}")


def parse_points(points: Any, request: SeriesRequest, source: str) -> list[float | None]:
    """Turn a JSON list of points into values, leaving out pairs outside the window.

    Raises AnalysisError, naming ``source``, for anything but a list of numbers,
    ``null`` and ``[time, value]`` pairs.
    """
    if not _is_list(points):
        raise AnalysisError(f"{source}: expected a list of points, got {points!r}")

    values: list[float | None] = []
    for point in points:
        if _is_list(point) and len(point) == 2 and _is_number(point[0]):
            if request.start <= point[0] <= request.end:
                values.append(_value(point[1], source))
            continue
        values.append(_value(point, source))
    return values


def _value(point: Any, source: str) -> float | None:
    if point is None:
        return None
    if not _is_number(point):
        raise AnalysisError(
            f"{source}: invalid point {point!r}: expected a number, null or "
            f"[unix_seconds, value]"
        )
    return float(point)


def _is_list(value: Any) -> bool:
    """Tell a JSON list (a tuple once the plan froze it) from a string."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- command -----------------------------------------------------------------------------


class CommandSeries:
    """Series from a command's standard output, one run per series."""

    def __init__(self, command: Any) -> None:
        if _is_list(command) and command and all(isinstance(part, str) for part in command):
            self.template = list(command)
            return
        if not isinstance(command, str) or not command.strip():
            raise AnalysisError(
                "a 'judge: compare' analysis with provider 'command' needs 'command', a "
                "command line or a list of arguments that prints the series",
                "command",
            )
        try:
            self.template = shlex.split(command)
        except ValueError as exc:
            raise AnalysisError(f"invalid 'command' {command!r}: {exc}", "command") from exc

    def measure(
        self, request: MeasurementRequest, cancel: threading.Event
    ) -> Mapping[str, float | None]:
        raise AnalysisError(
            f"analysis {request.analysis!r}: this command provider serves series only"
        )

    def fetch_series(
        self, request: SeriesRequest, cancel: threading.Event
    ) -> list[float | None]:
        import subprocess

        arguments = [_fill(part, request) for part in self.template]
        program = arguments[0]
        logger.debug("analysis %r: running %s for %s %s", request.analysis, program,
                     request.metric, request.group)
        try:
            done = subprocess.run(arguments, capture_output=True, text=True,
                                  timeout=request.timeout)
        except FileNotFoundError as exc:
            raise AnalysisError(f"series command {program!r} not found") from exc
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(
                f"series command {program!r} timed out after {request.timeout:g}s"
            ) from exc

        if done.returncode != 0:
            raise ProviderError(
                f"series command {program!r} exited with status {done.returncode}: "
                f"{done.stderr.strip()[:MAX_STDERR]}"
            )
        return parse_output(done.stdout, request, f"series command {program!r}")


def _fill(part: str, request: SeriesRequest) -> str:
    replacements = {
        "{query}": request.query,
        "{version}": request.version,
        "{group}": request.group,
        "{start}": f"{request.start:.0f}",
        "{end}": f"{request.end:.0f}",
    }
    for token, value in replacements.items():
        part = part.replace(token, value)
    return part


def parse_output(text: str, request: SeriesRequest, source: str) -> list[float | None]:
    """Parse a command's output: a JSON list of points, or one number per line."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return parse_points(json.loads(stripped), request, source)
        except json.JSONDecodeError as exc:
            raise AnalysisError(f"{source} printed invalid JSON: {exc}") from exc

    values: list[float | None] = []
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.strip()
        if not word:
            values.append(None)
            continue
        try:
            value = float(word)
        except ValueError:
            raise AnalysisError(
                f"{source} printed {word!r} on line {number}: expected a number per "
                f"line or a JSON list"
            ) from None
        values.append(None if math.isnan(value) else value)
    return values

