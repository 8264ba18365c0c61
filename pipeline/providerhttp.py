"""HTTP options and requests shared by the ``prometheus`` and ``http`` analysis providers.

Options (all optional):

``request_timeout`` (duration, default 10 s)
    Connect and read timeout of each request.
``retries`` (integer, default 2)
    Extra attempts after a connection error, a timeout, status 429 or a 5xx status,
    waiting 0.5 s, then 1 s, 2 s... between them. Other statuses are not retried.
``headers`` (mapping of strings)
    Extra request headers, for example a tenant header of a Prometheus proxy.
``bearer_token`` (string)
    Sent as ``Authorization: Bearer TOKEN``. Write it as ``${VAR}`` and list the variable
    under ``secrets:`` so that it is masked in reports.
``basic_auth`` (``{username, password}``)
    HTTP basic authentication; cannot be combined with ``bearer_token``.
``ca_file`` (path)
    PEM file of the certificate authorities that an ``https`` server's certificate must
    chain to, instead of the system's; relative to the pipeline file's folder.

Requests ignore proxy settings from the environment (``HTTP_PROXY``...) and ``.netrc``,
like the ``probe`` provider, so that a measurement reaches the address in the pipeline
file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pipeline.analysismodel import AnalysisError, ProviderError
from pipeline.context import Interrupted
from pipeline.durations import DURATION_PATTERN, format_duration, parse_duration

if TYPE_CHECKING:
    import requests

__all__ = ["HTTP_PROVIDER_PROPERTIES", "HttpOptions", "ProviderHttpError", "get_json"]

logger = logging.getLogger("shipline")

#: Seconds before the first retry; each further retry waits twice as long.
FIRST_RETRY_DELAY = 0.5

_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})

HTTP_PROVIDER_PROPERTIES: dict[str, Any] = {
    "request_timeout": {
        "type": ["number", "string"], "minimum": 0, "pattern": DURATION_PATTERN,
        "title": "Request timeout",
        "description": "Connect and read timeout of each request (default 10s).",
    },
    "retries": {
        "type": "integer", "minimum": 0, "title": "Retries",
        "description": "Extra attempts after a connection error, a timeout, 429 or a 5xx "
        "status (default 2).",
    },
    "headers": {
        "type": "object", "additionalProperties": {"type": "string"}, "title": "Headers",
        "description": "Extra request headers.",
    },
    "bearer_token": {
        "type": "string", "minLength": 1, "title": "Bearer token",
        "description": "Sent as `Authorization: Bearer TOKEN`; write it as `${VAR}` and "
        "list VAR under `secrets:`.",
    },
    "basic_auth": {
        "type": "object", "additionalProperties": False,
        "required": ["username", "password"],
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
        "title": "Basic authentication",
        "description": "HTTP basic authentication: `{username, password}`.",
    },
    "ca_file": {
        "type": "string", "minLength": 1, "title": "CA file",
        "description": "PEM file of the certificate authorities to trust for https, "
        "relative to the pipeline file's folder.",
    },
}


class ProviderHttpError(ProviderError):
    """A request that failed after its retries; the measurement counts as an error."""


@dataclass(frozen=True)
class HttpOptions:
    """The HTTP options of a provider, parsed; ``request_timeout`` is in seconds."""

    request_timeout: float = 10.0
    retries: int = 2
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    #: Absolute path of the CA file, or ``None`` for the system's authorities.
    ca_file: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], base: Path) -> HttpOptions:
        """Parse the HTTP options; ``base`` is the folder that ``ca_file`` is relative to.

        Raises AnalysisError, naming the key, for an invalid value, both kinds of
        authentication, or a ``ca_file`` that does not exist.
        """
        try:
            request_timeout = parse_duration(options.get("request_timeout", 10.0))
        except ValueError as exc:
            raise AnalysisError(f"invalid 'request_timeout': {exc}", "request_timeout") from exc

        retries = options.get("retries", 2)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise AnalysisError(
                f"invalid 'retries': expected an integer of 0 or more, got {retries!r}",
                "retries",
            )

        if "bearer_token" in options and "basic_auth" in options:
            raise AnalysisError("give either 'bearer_token' or 'basic_auth', not both",
                                "basic_auth")
        return cls(
            request_timeout=request_timeout,
            retries=retries,
            headers=MappingProxyType(_headers(options)),
            bearer_token=_optional_text(options, "bearer_token"),
            basic_auth=_basic_auth(options),
            ca_file=_ca_file(options, base),
        )


def get_json(
    url: str, params: Mapping[str, str], options: HttpOptions, cancel: threading.Event
) -> tuple[int, Any]:
    """Send a GET request, with the options' retries, and return the status and JSON body.

    The body is ``None`` when it is not JSON. Raises ProviderHttpError when the last
    attempt got no response or a status that is retried, and Interrupted when
    ``cancel`` is set while waiting to retry.
    """
    import requests

    delay = FIRST_RETRY_DELAY
    problem = ""
    with _session(options) as session:
        for attempt in range(options.retries + 1):
            if attempt:
                logger.info("retrying GET %s in %.1fs (attempt %d of %d): %s", url, delay,
                            attempt + 1, options.retries + 1, problem)
                if cancel.wait(delay):
                    raise Interrupted("measurement cancelled")
                delay *= 2
            try:
                response = session.get(url, params=dict(params),
                                       timeout=options.request_timeout, allow_redirects=False)
            except requests.RequestException as exc:
                problem = _request_problem(exc, options.request_timeout)
                continue
            if response.status_code in _RETRIED_STATUSES:
                problem = f"status {response.status_code}: {response.text[:200]}"
                continue
            return response.status_code, _json_or_none(response)
    attempts = options.retries + 1
    raise ProviderHttpError(
        f"GET {url} failed after {attempts} attempt{'s' if attempts > 1 else ''}: {problem}"
    )


def _request_problem(exc: requests.RequestException, timeout: float) -> str:
    """Word a failed request as the http check does: the cause, not the class names."""
    import requests

    from pipeline.checks import connection_reason

    if isinstance(exc, requests.Timeout):
        return f"timed out after {format_duration(timeout)}"
    if isinstance(exc, requests.ConnectionError):
        return connection_reason(exc)
    return f"request failed: {exc}"


def _session(options: HttpOptions) -> requests.Session:
    import requests

    session = requests.Session()
    session.trust_env = False
    session.headers.update(options.headers)
    if options.bearer_token is not None:
        session.headers["Authorization"] = f"Bearer {options.bearer_token}"
    if options.basic_auth is not None:
        session.auth = options.basic_auth
    if options.ca_file is not None:
        session.verify = options.ca_file
    return session


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _headers(options: Mapping[str, Any]) -> dict[str, str]:
    headers = options.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise AnalysisError("invalid 'headers': expected a mapping of strings", "headers")
    return dict(headers)


def _optional_text(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise AnalysisError(f"invalid {key!r}: expected a non-empty string", key)
    return value


def _basic_auth(options: Mapping[str, Any]) -> tuple[str, str] | None:
    value = options.get("basic_auth")
    if value is None:
        return None
    if (not isinstance(value, Mapping) or not isinstance(value.get("username"), str)
            or not isinstance(value.get("password"), str)):
        raise AnalysisError("invalid 'basic_auth': expected {username, password} strings",
                            "basic_auth")
    return str(value["username"]), str(value["password"])


def _ca_file(options: Mapping[str, Any], base: Path) -> str | None:
    value = _optional_text(options, "ca_file")
    if value is None:
        return None
    path = base / value
    if not path.is_file():
        raise AnalysisError(f"ca_file {value!r} not found: looked for {path}", "ca_file")
    return str(path)
