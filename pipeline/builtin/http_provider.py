"""The ``http`` analysis provider: a value from a JSON API, picked with JMESPath.

Each measurement sends ``GET url`` and returns, as ``result``, the part of the JSON body
that the ``select`` expression picks, or the whole body without one. Options, besides
the common analysis options of :mod:`pipeline.analysis` and the HTTP options of
:mod:`pipeline.providerhttp`:

``url`` (required)
    The http or https URL; ``{{ args.NAME }}`` is filled in.
``select`` (JMESPath expression)
    For example ``data.error_rate`` or ``checks[?name=='db'].latency_ms | [0]``.

JMESPath was chosen over JSONPath because it has one specification with a compliance
test suite that its implementations share, while JSONPath dialects differ in filters and
in whether a path returns a value or a list of matches. An expression that matches
nothing returns ``null``, which counts as no data.

A status other than 200 is a measurement error, except 401 and 403 (check the
authentication) which end the analysis, as does an invalid expression. A body that is
not JSON is a measurement error.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.analysis import (
    COMMON_ANALYSIS_PROPERTIES,
    AnalysisError,
    MeasurementRequest,
    ProviderError,
)
from pipeline.diagnostics import Diagnostic
from pipeline.providerhttp import HTTP_PROVIDER_PROPERTIES, HttpOptions, get_json
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Plan

PROVIDER = "http"

HTTP_PROPERTIES: dict[str, Any] = {
    "url": {
        "type": "string", "minLength": 1, "title": "URL",
        "description": "The JSON API to read at each measurement.",
    },
    "select": {
        "type": "string", "minLength": 1, "title": "Select",
        "description": "JMESPath expression that picks the value from the JSON body "
        "(default: the whole body).",
        "examples": ["data.error_rate", "checks[?name=='db'].latency_ms | [0]"],
    },
}


class HttpProviderError(ProviderError):
    """A response that this measurement cannot use; the measurement is an error."""


@dataclass(frozen=True)
class HttpProvider:
    """Reads ``url`` at each measurement; see the module docstring."""

    url: str
    #: The compiled JMESPath expression, or ``None`` for the whole body.
    select: Any
    http: HttpOptions

    def measure(self, request: MeasurementRequest, cancel: threading.Event) -> dict[str, Any]:
        """Read the URL once and return ``{"result": value}``.

        Raises AnalysisError for a refused authentication and HttpProviderError for
        another status or a body that is not JSON.
        """
        status, body = get_json(self.url, {}, self.http, cancel)
        if status in (401, 403):
            raise AnalysisError(
                f"{self.url} rejected the request with status {status}: check "
                f"'bearer_token' or 'basic_auth'", "bearer_token")
        if status != 200:
            raise HttpProviderError(f"{self.url} returned status {status}, expected 200")
        if body is None:
            raise HttpProviderError(f"{self.url} returned a body that is not JSON")
        return {"result": body if self.select is None else self.select.search(body)}


def _compile(expression: Any) -> Any:
    import jmespath
    from jmespath.exceptions import JMESPathError

    if expression is None:
        return None
    if not isinstance(expression, str) or not expression.strip():
        raise AnalysisError("invalid 'select': expected a JMESPath expression", "select")
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        reason = str(exc).splitlines()[0].rstrip(": ")
        raise AnalysisError(f"invalid 'select' {expression!r}: {reason}", "select") from None


# -- hooks -------------------------------------------------------------------------------


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [
        StepSchema(
            kind="analysis",
            type=PROVIDER,
            schema={
                "required": ["url"],
                "properties": {**COMMON_ANALYSIS_PROPERTIES, **HTTP_PROVIDER_PROPERTIES,
                               **HTTP_PROPERTIES},
            },
            description="Read a JSON API per measurement; result is the value that a "
            "JMESPath expression picks.",
        )
    ]


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    """Compile the ``select`` of every http analysis that has no argument in it, so that
    ``shipline validate`` reports an invalid expression instead of the first run.

    An expression with ``{{ args.NAME }}`` is compiled when the run has its arguments.
    """
    from pipeline.analysisuses import uses_analyses

    if not uses_analyses(plan):
        return []
    from pipeline.analysischecks import provider_uses

    diagnostics = []
    for _name, options, path in provider_uses(plan, PROVIDER):
        select = options.get("select")
        if isinstance(select, str) and "{{" in select:
            continue
        try:
            _compile(select)
        except AnalysisError as exc:
            diagnostics.append(Diagnostic(str(exc), None, (*path, "select")))
    return diagnostics


@hookimpl
def shipline_make_provider(
    name: str, options: Mapping[str, Any], context: RunContext
) -> HttpProvider | None:
    if name != PROVIDER:
        return None
    url = options.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AnalysisError(f"invalid 'url': expected an http or https URL, got {url!r}",
                            "url")
    select = _compile(options.get("select"))
    return HttpProvider(url, select, HttpOptions.from_options(options, context.plan.file.parent))
