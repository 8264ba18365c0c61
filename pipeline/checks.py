"""Health checks: an HTTP request or a command, retried with exponential backoff.

:func:`run_check` runs one check spec (see :mod:`pipeline.checkspec` for its options
and schema).

Every failed attempt is retried, up to ``retries`` times, except for failures that a
retry cannot fix (an invalid URL, a missing CA file, a command that is not found).
The waits between attempts start at ``backoff`` and double each time, up to
:data:`~pipeline.checkspec.MAX_BACKOFF` seconds. They go through the run's clock, so
tests with a fake clock do not wait and an interrupt cuts a wait short.

``requests`` and ``ssl`` are imported only when an HTTP check runs, to keep start-up fast.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.checkspec import (
    COMMAND_DEFAULTS,
    HTTP_DEFAULTS,
    retry_delays,
    split_spec,
)
from pipeline.durations import format_duration, parse_duration
from pipeline.templates import substitute

if TYPE_CHECKING:
    import requests

    from pipeline.clock import Clock

logger = logging.getLogger("shipline")

#: Bytes of a response body read for ``body_contains`` and ``json``; the rest is ignored.
MAX_BODY = 1024 * 1024

#: Characters of a response body kept in the check's output.
_BODY_EXCERPT = 4096


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check after all its attempts.

    ``message`` is one line naming the request or command and the last failure.
    ``output`` is the last attempt's response body or command output, bounded.
    ``duration`` is in seconds on the run's clock. ``data`` contains ``attempts`` and the
    last ``status`` (HTTP) or ``exit_code`` (command).
    """

    ok: bool
    message: str
    attempts: int
    duration: float
    output: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    #: The run was interrupted (or the step timed out) before the check finished.
    cancelled: bool = False


@dataclass(frozen=True)
class _Attempt:
    ok: bool
    #: The outcome without the subject: ``status 503, expected 200``.
    reason: str
    output: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    #: A retry cannot change the outcome (invalid URL, command not found).
    permanent: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class _Probe:
    """One kind of check, ready to run: its subject for messages and one attempt."""

    subject: str
    attempt: Callable[[threading.Event], _Attempt]
    retries: int
    backoff: float


# -- running -----------------------------------------------------------------------------


def run_check(
    spec: Mapping[str, Any],
    *,
    clock: Clock,
    cancel: threading.Event,
    placeholders: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> CheckResult:
    """Run the check ``spec`` until it passes or its retries are used up.

    ``placeholders`` fill in ``{name}`` in the URL or command. ``cwd`` is the folder
    that commands run in and that a relative ``ca_file`` is read from. Raises
    ValueError for a spec that is not a valid check, and TemplateError for a URL or
    command with an unknown placeholder. Every other problem is a failed result.
    """
    kind, options = split_spec(spec)
    values = dict(placeholders or {})
    if kind == "http":
        probe = _http_probe(options, values, cwd)
    else:
        probe = _command_probe(options, values, cwd)
    return _run_attempts(probe, clock, cancel)


def _run_attempts(probe: _Probe, clock: Clock, cancel: threading.Event) -> CheckResult:
    started = clock.monotonic()
    delays = retry_delays(probe.backoff, probe.retries)
    attempts = 0

    while True:
        if cancel.is_set():
            return _cancelled(probe, attempts, clock.monotonic() - started)
        attempts += 1
        attempt = probe.attempt(cancel)
        if attempt.cancelled:
            return _cancelled(probe, attempts, clock.monotonic() - started)

        delay = None if attempt.ok or attempt.permanent else next(delays, None)
        if delay is None:
            return _finish(probe, attempt, attempts, clock.monotonic() - started)

        logger.info("check %s failed (attempt %d of %d): %s; retrying in %s", probe.subject,
                    attempts, probe.retries + 1, attempt.reason, format_duration(delay))
        if not clock.sleep(delay, cancel):
            return _cancelled(probe, attempts, clock.monotonic() - started)


def _finish(probe: _Probe, attempt: _Attempt, attempts: int, duration: float) -> CheckResult:
    message = f"{probe.subject}: {attempt.reason}"
    if attempts > 1:
        message += f" (after {attempts} attempts)"
    return CheckResult(attempt.ok, message, attempts, duration, attempt.output,
                       {"attempts": attempts, **attempt.data})


def _cancelled(probe: _Probe, attempts: int, duration: float) -> CheckResult:
    return CheckResult(False, f"{probe.subject}: cancelled", attempts, duration,
                       data={"attempts": attempts}, cancelled=True)


# -- command checks ----------------------------------------------------------------------


def _command_probe(
    options: Mapping[str, Any], placeholders: Mapping[str, str], cwd: Path | None
) -> _Probe:
    template = str(options["command"])
    shell = bool(options.get("shell", COMMAND_DEFAULTS["shell"]))
    timeout = parse_duration(options.get("timeout", COMMAND_DEFAULTS["timeout"]))

    # Fill in the placeholders once now, so that a bad template fails before anything
    # runs and the message shows the command as it runs.
    command_line = substitute(template, placeholders, quote=shell)
    # Imported here: validating a pipeline imports this module, but only a run starts
    # processes.
    from pipeline.commands import run_command

    def attempt(cancel: threading.Event) -> _Attempt:
        result = run_command(template, placeholders, timeout=timeout, cancel=cancel,
                             shell=shell, cwd=cwd)
        return _Attempt(
            result.ok, result.message, result.output, {"exit_code": result.exit_code},
            permanent=result.not_found or bool(result.error), cancelled=result.cancelled,
        )

    return _Probe(
        f"command '{command_line}'", attempt,
        retries=int(options.get("retries", COMMAND_DEFAULTS["retries"])),
        backoff=parse_duration(options.get("backoff", COMMAND_DEFAULTS["backoff"])),
    )


# -- HTTP checks -------------------------------------------------------------------------


@dataclass(frozen=True)
class _HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    timeout: float
    verify: str | bool
    follow_redirects: bool
    expected_status: tuple[int, ...]
    body_contains: str | None
    json_field: Mapping[str, Any] | None


def _http_probe(
    options: Mapping[str, Any], placeholders: Mapping[str, str], cwd: Path | None
) -> _Probe:
    request = _http_request(options, placeholders, cwd)

    return _Probe(
        f"{request.method} {request.url}", lambda _cancel: _http_attempt(request),
        retries=int(options.get("retries", HTTP_DEFAULTS["retries"])),
        backoff=parse_duration(options.get("backoff", HTTP_DEFAULTS["backoff"])),
    )


def _http_request(
    options: Mapping[str, Any], placeholders: Mapping[str, str], cwd: Path | None
) -> _HttpRequest:
    status = options.get("status", HTTP_DEFAULTS["status"])
    expected = (status,) if isinstance(status, int) else tuple(status)

    verify: str | bool = True
    if options.get("ca_file"):
        ca_file = Path(str(options["ca_file"]))
        verify = str(ca_file if ca_file.is_absolute() or cwd is None else cwd / ca_file)

    return _HttpRequest(
        method=str(options.get("method", HTTP_DEFAULTS["method"])).upper(),
        url=substitute(str(options["url"]), placeholders, "URL"),
        headers=dict(options.get("headers", {})),
        timeout=parse_duration(options.get("timeout", HTTP_DEFAULTS["timeout"])),
        verify=verify,
        follow_redirects=bool(options.get("follow_redirects", False)),
        expected_status=expected,
        body_contains=options.get("body_contains"),
        json_field=options.get("json"),
    )


def _http_attempt(request: _HttpRequest) -> _Attempt:
    import requests  # Imported here: slow to import and only needed by HTTP checks.

    if isinstance(request.verify, str) and not Path(request.verify).is_file():
        return _Attempt(False, f"CA file not found: '{request.verify}'", permanent=True)

    try:
        with requests.Session() as session:
            response = session.request(
                request.method, request.url, headers=_with_user_agent(request.headers),
                timeout=request.timeout, verify=request.verify,
                allow_redirects=request.follow_redirects, stream=True,
            )
            with response:
                body = _read_body(response)
    except requests.RequestException as exc:
        return _request_failed(exc, request)

    output = _response_output(response, body)
    data = {"status": response.status_code}
    reason = _judge_response(request, response.status_code, body)
    if reason is not None:
        return _Attempt(False, reason, output, data)
    return _Attempt(True, f"status {response.status_code}", output, data)


def _with_user_agent(headers: Mapping[str, str]) -> dict[str, str]:
    from pipeline import __version__

    if any(name.lower() == "user-agent" for name in headers):
        return dict(headers)
    return {"User-Agent": f"shipline/{__version__}", **headers}


def _read_body(response: requests.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_content(chunk_size=65536):
        body += chunk
        if len(body) >= MAX_BODY:
            del body[MAX_BODY:]
            break
    return bytes(body)


def _response_output(response: requests.Response, body: bytes) -> str:
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if len(text) > _BODY_EXCERPT:
        text = text[:_BODY_EXCERPT] + f"\n[... {len(text) - _BODY_EXCERPT} more characters]"
    return f"HTTP {response.status_code} {response.reason}\n{text}"


def _judge_response(request: _HttpRequest, status: int, body: bytes) -> str | None:
    """Return why the response fails the check, or ``None`` if it passes."""
    if status not in request.expected_status:
        expected = " or ".join(str(code) for code in request.expected_status)
        return f"status {status}, expected {expected}"

    if request.body_contains is not None:
        text = body.decode("utf-8", errors="replace")
        if request.body_contains not in text:
            return f"response body does not contain {request.body_contains!r}"

    if request.json_field is not None:
        return _judge_json(request.json_field, body)
    return None


_MISSING = object()


def _judge_json(json_field: Mapping[str, Any], body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError as exc:
        return f"response body is not valid JSON: {exc}"

    path = str(json_field["path"])
    value = _lookup(document, path)
    if value is _MISSING:
        return f"JSON field '{path}' is missing"
    if "equals" in json_field and not json_equal(value, json_field["equals"]):
        return (
            f"JSON field '{path}' is {json.dumps(value)}, "
            f"expected {json.dumps(_plain(json_field['equals']))}"
        )
    return None


def _lookup(document: Any, path: str) -> Any:
    """Follow a dotted path through objects and lists; return ``_MISSING`` if it breaks."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def json_equal(left: Any, right: Any) -> bool:
    """Compare two JSON values as JSON does: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if _is_list(left) and _is_list(right):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return _scalar_equal(left, right)


def _scalar_equal(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _plain(value: Any) -> Any:
    """Turn the read-only mappings and tuples of a compiled plan back into JSON data."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if _is_list(value):
        return [_plain(item) for item in value]
    return value


def _request_failed(exc: requests.RequestException, request: _HttpRequest) -> _Attempt:
    import requests

    if isinstance(exc, requests.Timeout):
        return _Attempt(False, f"timed out after {format_duration(request.timeout)}")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return _Attempt(False, f"invalid URL: {exc}", permanent=True)
    if isinstance(exc, requests.ConnectionError):
        return _Attempt(False, connection_reason(exc))
    return _Attempt(False, f"request failed: {type(exc).__name__}: {exc}")


def connection_reason(exc: BaseException) -> str:
    """Name the root cause of a connection error in a few words, without the class names
    and addresses that requests and urllib3 put in their messages."""
    import ssl

    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return f"connection failed: {cause.strerror}"
    return f"connection failed: {type(exc).__name__}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and what it wraps, innermost last: requests nests urllib3 errors."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__]
        nested += list(current.args)
        pending += [item for item in nested if isinstance(item, BaseException)]


def describe_check(spec: Mapping[str, Any]) -> str:
    """Return a short label for a check spec, for plan output: ``GET URL`` or the command."""
    kind, options = split_spec(spec)
    if kind == "http":
        method = str(options.get("method", HTTP_DEFAULTS["method"])).upper()
        return f"{method} {options.get('url', '')}"
    return str(options["command"])
