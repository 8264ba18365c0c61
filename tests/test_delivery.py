"""pipeline.delivery against real HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from helpers.recorder import HANG, Recorder, Reply, refused_url
from pipeline.delivery import HttpOptions, HttpResult, send_json
from pipeline.masking import Masker

SECRET = "hooks-token-5f3a9c"
MASKER = Masker([SECRET])
#: Short backoff so retry tests take milliseconds.
FAST = HttpOptions(timeout=2.0, retries=2, backoff=0.01)


def post(url: str, payload: object = None, options: HttpOptions = FAST,
         **kwargs: object) -> HttpResult:
    return send_json("POST", url, {"event": "started"} if payload is None else payload,
                     options=options, masker=MASKER.mask, **kwargs)  # type: ignore[arg-type]


def origin(recorder: Recorder) -> str:
    scheme = "https" if recorder.ca_bundle else "http"
    return f"{scheme}://127.0.0.1:{recorder.port}"


def test_send_json_posts_body_and_headers() -> None:
    with Recorder() as recorder:
        result = post(recorder.url("/hook"), {"text": "hi"}, headers={"X-Extra": "1"})
        [request] = recorder.wait_for(1)

    assert result == HttpResult(True, 200, "", f"POST {origin(recorder)}: HTTP 200")
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.json() == {"text": "hi"}
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Extra") == "1"


def test_send_json_bytes_sent_verbatim() -> None:
    body = b'{"b":1,  "a":2}'
    with Recorder() as recorder:
        post(recorder.url("/"), body)
        [request] = recorder.wait_for(1)

    assert request.body == body


def test_send_json_returns_response_body() -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(201, '{"id": 7}'))
        result = post(recorder.url("/"))

    assert result.ok
    assert result.status == 201
    assert json.loads(result.body) == {"id": 7}


def test_send_json_slow_reply_times_out_without_retry() -> None:
    with Recorder() as recorder:
        recorder.route("/", HANG)
        result = post(recorder.url("/"), options=HttpOptions(timeout=0.2, retries=3))
        requests = recorder.wait_for(1)

    assert result == HttpResult(
        False, None, "",
        f"POST {origin(recorder)} failed: timed out waiting 0.2 s for the response")
    # A read timeout is not retried: the endpoint may already have acted on the request.
    assert len(requests) == 1


def test_send_json_500_retried_then_succeeds() -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(500, "busy"), Reply(200, "ok"))
        result = post(recorder.url("/"))
        requests = recorder.wait_for(2)

    assert result == HttpResult(True, 200, "ok", f"POST {origin(recorder)}: HTTP 200 after 1 retry")
    assert len(requests) == 2
    assert requests[0].body == requests[1].body


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_send_json_5xx_retries_exhausted(status: int) -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(status, "down\nfor maintenance"))
        result = post(recorder.url("/"))
        requests = recorder.wait_for(3)

    assert result == HttpResult(
        False, status, "down\nfor maintenance",
        f"POST {origin(recorder)} failed: HTTP {status} after 2 retries: down for maintenance")
    assert len(requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_send_json_4xx_not_retried(status: int) -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(status, "no"))
        result = post(recorder.url("/"))
        requests = recorder.wait_for(1)

    assert result == HttpResult(False, status, "no",
                                f"POST {origin(recorder)} failed: HTTP {status}: no")
    assert len(requests) == 1


def test_send_json_429_waits_for_retry_after() -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(429, headers={"Retry-After": "1"}), Reply(200))
        result = post(recorder.url("/"), options=HttpOptions(timeout=2.0, backoff=0.01))
        first, second = recorder.wait_for(2)

    assert result.ok
    assert result.message == f"POST {origin(recorder)}: HTTP 200 after 1 retry"
    # A lower bound only: the retry must not come before the server allows it.
    assert second.time - first.time >= 0.95


def test_send_json_retry_after_capped() -> None:
    options = HttpOptions(timeout=2.0, backoff=0.01, max_retry_after=0.1)
    with Recorder() as recorder:
        recorder.route("/", Reply(503, headers={"Retry-After": "3600"}), Reply(200))
        result = post(recorder.url("/"), options=options)
        first, second = recorder.wait_for(2)

    assert result.ok
    # Without the cap the retry would come an hour later and the test would time out.
    assert second.time - first.time < 60


def test_send_json_429_retries_exhausted() -> None:
    options = HttpOptions(timeout=2.0, retries=1, backoff=0.01)
    with Recorder() as recorder:
        recorder.route("/", Reply(429, "slow down", headers={"Retry-After": "0"}))
        result = post(recorder.url("/"), options=options)
        requests = recorder.wait_for(2)

    assert result.message == (f"POST {origin(recorder)} failed: HTTP 429 after 1 retry: "
                              "slow down")
    assert len(requests) == 2


def test_send_json_redirect_not_followed() -> None:
    with Recorder() as recorder, Recorder() as elsewhere:
        recorder.route("/", Reply(307, redirect=elsewhere.url("/moved")))
        result = post(recorder.url("/"))
        requests = recorder.wait_for(1)

    assert result == HttpResult(
        False, 307, "",
        f"POST {origin(recorder)} failed: HTTP 307 redirect to {elsewhere.url('/moved')} "
        "not followed; set the URL to the final address")
    assert len(requests) == 1
    assert elsewhere.requests == []


def test_send_json_tls_with_ca_bundle() -> None:
    with Recorder(tls=True) as recorder:
        options = HttpOptions(timeout=2.0, ca_bundle=recorder.ca_bundle)
        result = post(recorder.url("/"), options=options)
        [request] = recorder.wait_for(1)

    assert result == HttpResult(True, 200, "", f"POST {origin(recorder)}: HTTP 200")
    assert request.json() == {"event": "started"}


def test_send_json_tls_without_ca_bundle_fails() -> None:
    with Recorder(tls=True) as recorder:
        result = post(recorder.url("/"), options=HttpOptions(timeout=2.0, retries=2))

    assert not result.ok
    assert result.status is None
    # The rest of the message is OpenSSL's reason, which differs between versions.
    assert result.message.startswith(
        f"POST {origin(recorder)} failed: TLS verification failed: ")
    assert recorder.requests == []


def test_send_json_missing_ca_bundle(tmp_path) -> None:
    missing = tmp_path / "missing.pem"
    with Recorder(tls=True) as recorder:
        result = post(recorder.url("/"), options=HttpOptions(ca_bundle=str(missing)))

    assert result == HttpResult(
        False, None, "",
        f"POST {origin(recorder)} failed: CA bundle {missing} not found; set ca_bundle to a "
        "readable PEM file")
    assert recorder.requests == []


def test_send_json_connection_refused() -> None:
    url = refused_url("/hook")
    result = post(url)

    assert result == HttpResult(
        False, None, "", f"POST {url.removesuffix('/hook')} failed: connection failed: "
        "Connection refused")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "not a url", ""])
def test_send_json_invalid_url(url: str) -> None:
    result = post(url)

    assert not result.ok
    assert result.message.endswith("failed: invalid URL; use an http:// or https:// URL")


def test_send_json_message_hides_url_path() -> None:
    with Recorder() as recorder:
        recorder.route(f"/services/{SECRET}", Reply(400, "invalid_token"))
        # No masking: the path must be left out, not only masked.
        result = send_json("POST", recorder.url(f"/services/{SECRET}"), {}, options=FAST,
                           masker=str)

    assert result.message == f"POST {origin(recorder)} failed: HTTP 400: invalid_token"


def test_send_json_masks_secret_in_response() -> None:
    with Recorder() as recorder:
        recorder.route("/", Reply(400, f"bad token {SECRET}"))
        result = post(recorder.url("/"))

    assert result.body == "bad token ***"
    assert result.message == f"POST {origin(recorder)} failed: HTTP 400: bad token ***"


def test_send_json_retry_logs_omit_url_path(caplog: pytest.LogCaptureFixture) -> None:
    # urllib3's own retry warning quotes the path. Its DEBUG lines do too, but they stay
    # off unless a user turns on DEBUG for the urllib3 logger.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="shipline")
    url = refused_url(f"/services/{SECRET}")
    post(url)

    assert SECRET not in caplog.text
    port = url.split(":")[2].split("/")[0]
    assert (f"retrying POST to 127.0.0.1:{port} after NewConnectionError (retry 1)"
            in caplog.messages)


def test_send_json_long_body_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipeline.delivery.MAX_BODY_BYTES", 10)
    with Recorder() as recorder:
        recorder.route("/", Reply(500, "x" * 1000))
        result = post(recorder.url("/"), options=HttpOptions(retries=0))

    assert result.body == "x" * 10


def test_http_options_from_options() -> None:
    options = HttpOptions.from_options({"timeout": 3, "retries": 0, "ca_bundle": "ca.pem",
                                        "url": "https://example.invalid"})

    assert options == HttpOptions(timeout=3.0, retries=0, ca_bundle="ca.pem")


def test_http_options_from_options_defaults() -> None:
    assert HttpOptions.from_options({}) == HttpOptions()


def test_delivery_import_skips_requests() -> None:
    code = ("import sys, pipeline.delivery\n"
            "print(sorted({'requests', 'urllib3'} & set(sys.modules)))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout

    assert output.strip() == "[]"
