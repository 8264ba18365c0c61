"""Send one JSON request to a notification endpoint, with a timeout, retries and TLS checks.

Every notifier that talks HTTP sends through :func:`send_json`, so they all behave the same:

- every attempt has a connect and a read timeout (:attr:`HttpOptions.timeout`);
- connection errors and responses 429, 500, 502, 503 and 504 are retried with exponential
  backoff and jitter by urllib3's ``Retry``. A ``Retry-After`` header sets the wait instead,
  up to :attr:`HttpOptions.max_retry_after`;
- other 4xx responses, TLS errors and read timeouts are not retried;
- redirects are never followed: a 3xx response is a failed delivery that names the
  ``Location``, because replaying a POST to another URL would send the message (and any
  token in its headers) somewhere the pipeline file never named;
- TLS certificates are always verified, against :attr:`HttpOptions.ca_bundle` when set and
  otherwise against requests' default bundle (certifi's, or ``REQUESTS_CA_BUNDLE``).

``requests`` is imported inside the functions, so importing this module costs nothing and
``shipline validate`` stays fast.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests
    from urllib3.util.retry import Retry

logger = logging.getLogger("shipline")

#: Response statuses retried with backoff. 429 and 503 usually carry ``Retry-After``.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Bytes of a response body kept in :attr:`HttpResult.body`; the rest is not read.
MAX_BODY_BYTES = 256 * 1024
#: Characters of a response body quoted in :attr:`HttpResult.message`.
MAX_MESSAGE_BODY = 200

#: JSON Schema properties for the options :meth:`HttpOptions.from_options` reads. Notifier
#: fragments merge them into their own ``properties``.
HTTP_OPTIONS_PROPERTIES: dict[str, Any] = {
    "timeout": {
        "title": "Request timeout",
        "description": "Seconds to wait for a connection and then for each read of the "
                       "response, per attempt (default 10).",
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 300,
    },
    "retries": {
        "title": "Retries",
        "description": "How many times to retry after a connection error or a response 429, "
                       "500, 502, 503 or 504, with exponential backoff (default 3).",
        "type": "integer",
        "minimum": 0,
        "maximum": 10,
    },
    "ca_bundle": {
        "title": "CA bundle",
        "description": "Path of a PEM file with the certificate authorities that sign the "
                       "endpoint's certificate; without it, requests' default bundle "
                       "(certifi, or the REQUESTS_CA_BUNDLE variable) is used. "
                       "Certificates are always verified.",
        "type": "string",
        "minLength": 1,
    },
}


@dataclass(frozen=True)
class HttpOptions:
    """How to send one request: timeout, retries, backoff and trust."""

    #: Seconds for the connection and then for each socket read, per attempt.
    timeout: float = 10.0
    #: Retries after connection errors and responses with a status in :data:`RETRY_STATUSES`.
    retries: int = 3
    #: Seconds: the wait before retry ``n`` (from the second on) is ``backoff * 2**(n-1)``
    #: plus a random jitter of up to ``backoff`` seconds.
    backoff: float = 0.5
    #: Seconds, the cap on a wait that ``Retry-After`` requests.
    max_retry_after: float = 30.0
    #: PEM file of trusted CAs; None means requests' default bundle.
    ca_bundle: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HttpOptions:
        """Read ``timeout``, ``retries`` and ``ca_bundle`` from validated notifier options.

        Missing keys keep the defaults. The values are expected to have passed
        :data:`HTTP_OPTIONS_PROPERTIES`, so only their types are converted here.
        """
        defaults = cls()
        ca_bundle = options.get("ca_bundle")
        return cls(
            timeout=float(options.get("timeout", defaults.timeout)),
            retries=int(options.get("retries", defaults.retries)),
            ca_bundle=str(ca_bundle) if ca_bundle else None,
        )


@dataclass(frozen=True)
class HttpResult:
    """The outcome of :func:`send_json`.

    ``status`` is None when no response arrived (connection refused, timeout, TLS failure).
    ``body`` is the response text, masked and cut at :data:`MAX_BODY_BYTES`. ``message`` is
    one masked line for logs and reports. It names the endpoint by scheme, host and port
    only, because webhook URLs often carry a token in their path.
    """

    ok: bool
    status: int | None
    body: str
    message: str


def send_json(method: str, url: str, payload: Any, *, headers: Mapping[str, str] | None = None,
              options: HttpOptions, masker: Callable[[str], str]) -> HttpResult:
    """Send ``payload`` as JSON to ``url`` and return the outcome.

    Failed deliveries are returned, not raised: only a ``payload`` that :func:`json.dumps`
    cannot serialise raises (TypeError), because that is a bug in the notifier.
    ``payload`` is serialised with :func:`json.dumps`, unless it is ``bytes``, which are sent
    as they are (a signed body must be sent byte for byte as signed). ``headers`` are added
    to ``Content-Type: application/json``; their values never appear in a message. A 2xx
    response is ``ok``; anything else, including a 3xx, is a failed delivery. A missing
    ``ca_bundle`` file is a failed delivery too. The call blocks for at most about
    ``(retries + 1) * timeout`` plus the backoff and ``Retry-After`` waits.
    """
    import requests

    target = f"{method.upper()} {_origin(url)}"
    problem = _check_ca_bundle(options.ca_bundle)
    if problem:
        return HttpResult(False, None, "", masker(f"{target} failed: {problem}"))

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    from pipeline import __version__

    all_headers = {"Content-Type": "application/json", "User-Agent": f"shipline/{__version__}",
                   **(headers or {})}
    try:
        with _session(options) as session:
            response = session.request(
                method.upper(), url, data=body, headers=all_headers,
                timeout=(options.timeout, options.timeout), allow_redirects=False,
                verify=options.ca_bundle or True, stream=True,
            )
            return _result(target, response, masker)
    except requests.RequestException as error:
        message = masker(f"{target} failed: {_describe(error, options)}")
        logger.debug("delivery error for %s: %s", target, type(error).__name__)
        return HttpResult(False, None, "", message)


def _check_ca_bundle(ca_bundle: str | None) -> str:
    if ca_bundle is None or os.path.isfile(ca_bundle):
        return ""
    return f"CA bundle {ca_bundle} not found; set ca_bundle to a readable PEM file"


def _session(options: HttpOptions) -> requests.Session:
    """Build a session whose adapter retries as the module docstring describes."""
    import requests
    from requests.adapters import HTTPAdapter

    _hide_urllib3_retry_warnings()
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=_retry(options))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _retry(options: HttpOptions) -> Retry:
    # read=0: after a read timeout the endpoint may already have posted the message, and
    # chat webhooks have no idempotency key to drop the copy. other=0 covers TLS errors.
    return _retry_class()(
        total=options.retries,
        connect=options.retries,
        read=0,
        status=options.retries,
        other=0,
        redirect=False,
        allowed_methods=None,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=options.backoff,
        backoff_jitter=options.backoff,
        backoff_max=max(options.backoff, options.max_retry_after),
        respect_retry_after_header=True,
        max_retry_after=options.max_retry_after,
        raise_on_status=False,
    )


def _result(target: str, response: requests.Response,
            masker: Callable[[str], str]) -> HttpResult:
    raw = response.raw.read(MAX_BODY_BYTES, decode_content=True) or b""
    text = masker(raw.decode(response.encoding or "utf-8", errors="replace"))
    status = response.status_code
    retried = _retries_made(response)
    suffix = f" after {retried} {'retry' if retried == 1 else 'retries'}" if retried else ""

    if 200 <= status < 300:
        return HttpResult(True, status, text, masker(f"{target}: HTTP {status}{suffix}"))
    if 300 <= status < 400:
        location = masker(response.headers.get("Location", "(no Location header)"))
        message = (f"{target} failed: HTTP {status} redirect to {location} not followed; "
                   "set the URL to the final address")
        return HttpResult(False, status, text, masker(message))

    quoted = " ".join(text.split())[:MAX_MESSAGE_BODY]
    detail = f": {quoted}" if quoted else ""
    return HttpResult(False, status, text,
                      masker(f"{target} failed: HTTP {status}{suffix}{detail}"))


def _retries_made(response: requests.Response) -> int:
    retries = getattr(response.raw, "retries", None)
    return len(retries.history) if retries is not None else 0


def _describe(error: BaseException, options: HttpOptions) -> str:
    """Name a request error without its URL, which may carry a token in its path."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    causes = _causes(error)
    root = causes[-1]
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS verification failed: {_reason_text(root)}"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return f"timed out connecting after {options.timeout:g} s"
    # With read retries off, urllib3 ends a read timeout with MaxRetryError, which requests
    # raises as ConnectionError rather than ReadTimeout.
    if any(isinstance(cause, (requests.exceptions.ReadTimeout, ReadTimeoutError))
           for cause in causes):
        return f"timed out waiting {options.timeout:g} s for the response"
    if isinstance(error, requests.exceptions.ConnectionError):
        return f"connection failed: {_reason_text(root)}"
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidSchema)):
        return "invalid URL; use an http:// or https:// URL"
    return type(error).__name__


def _causes(error: BaseException) -> list[BaseException]:
    """Follow requests' and urllib3's wrapping from ``error`` down to the error that started it."""
    from urllib3.exceptions import MaxRetryError

    current = error
    chain = [current]
    for _ in range(10):
        if isinstance(current, MaxRetryError) and current.reason is not None:
            current = current.reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        elif current.__cause__ is not None:
            current = current.__cause__
        else:
            break
        chain.append(current)
    return chain


def _reason_text(root: BaseException) -> str:
    """Return a cause's text: "Connection refused", "unable to get local issuer certificate"."""
    reason = getattr(root, "verify_message", None) or getattr(root, "strerror", None)
    if reason:
        return str(reason)
    text = str(root)
    # urllib3 prefixes its errors with "HTTPConnection(host=..., port=...): ".
    return text.split("): ", 1)[-1] if "): " in text else text


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    if not parts.scheme or not host:
        return "(invalid URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"


class _RetryWarningFilter(logging.Filter):
    """Drop urllib3's "Retrying ..." warning, which quotes the URL path (maybe a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "__urllib3-retry-warning")


_RETRY_WARNING_FILTER = _RetryWarningFilter()


def _hide_urllib3_retry_warnings() -> None:
    # Adding the same filter object twice is a no-op in logging.Filterer.addFilter.
    logging.getLogger("urllib3.connectionpool").addFilter(_RETRY_WARNING_FILTER)


@functools.cache
def _retry_class() -> Callable[..., Retry]:
    """Create the Retry subclass on first use, so importing this module skips urllib3."""
    from urllib3.util.retry import Retry

    class CappedRetry(Retry):
        """urllib3's Retry with a cap on ``Retry-After`` waits and a log line per retry.

        The cap is kept here rather than in ``retry_after_max`` because that argument
        only exists in recent urllib3 releases.
        """

        # urllib3 retries 413 too when it carries Retry-After; a 4xx other than 429
        # means the request itself is wrong, so it is never retried.
        RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

        def __init__(self, *args: Any, max_retry_after: float = 30.0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.max_retry_after = max_retry_after

        def new(self, **kwargs: Any) -> CappedRetry:
            retry = super().new(**kwargs)
            retry.max_retry_after = self.max_retry_after
            return retry

        def parse_retry_after(self, retry_after: str) -> float:
            return min(super().parse_retry_after(retry_after), self.max_retry_after)

        def increment(self, method: str | None = None, url: str | None = None,
                      *args: Any, **kwargs: Any) -> CappedRetry:
            new_retry = super().increment(method, url, *args, **kwargs)
            last = new_retry.history[-1]
            cause = f"HTTP {last.status}" if last.status else type(last.error).__name__
            pool = kwargs.get("_pool")
            host = f"{pool.host}:{pool.port}" if pool is not None else "the endpoint"
            logger.info("retrying %s to %s after %s (retry %d)", method, host, cause,
                        len(new_retry.history))
            return new_retry

    return CappedRetry
