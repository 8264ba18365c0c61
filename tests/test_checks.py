from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from helpers.httpserver import HttpServer, Reply, write_self_signed
from pipeline import __version__
from pipeline.checks import CheckResult, describe_check, json_equal, run_check
from pipeline.clock import FakeClock
from pipeline.templates import TemplateError


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as running:
        yield running


def check(spec: Mapping[str, Any], clock: FakeClock | None = None, **kwargs: Any) -> CheckResult:
    return run_check(spec, clock=clock or FakeClock(), cancel=threading.Event(), **kwargs)


def free_port() -> int:
    """Return a loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- HTTP: status --------------------------------------------------------------------------


def test_http_check_passes(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, "ok"))

    result = check({"http": {"url": server.url("/healthz")}})

    assert result.ok
    assert result.message == f"GET {server.url('/healthz')}: status 200"
    assert result.attempts == 1
    assert result.data == {"attempts": 1, "status": 200}
    assert result.output == "HTTP 200 OK\nok"


def test_http_check_status_retries_with_backoff(server: HttpServer) -> None:
    server.route("/healthz", Reply(503, "starting"))
    clock = FakeClock()

    result = check({"http": {"url": server.url("/healthz")}}, clock)

    assert not result.ok
    assert result.message == (
        f"GET {server.url('/healthz')}: status 503, expected 200 (after 3 attempts)"
    )
    assert result.attempts == 3
    assert clock.sleeps == [1.0, 2.0]
    assert len(server.requests) == 3
    assert result.duration == 3.0


def test_http_check_passes_after_retry(server: HttpServer) -> None:
    server.route("/healthz", Reply(503), Reply(503), Reply(200))
    clock = FakeClock()

    result = check({"http": {"url": server.url("/healthz"), "backoff": "500ms"}}, clock)

    assert result.ok
    assert result.message == f"GET {server.url('/healthz')}: status 200 (after 3 attempts)"
    assert clock.sleeps == [0.5, 1.0]


def test_http_check_backoff_is_capped(server: HttpServer) -> None:
    server.route("/healthz", Reply(500))
    clock = FakeClock()

    check({"http": {"url": server.url("/healthz"), "retries": 6, "backoff": "10s"}}, clock)

    assert clock.sleeps == [10.0, 20.0, 30.0, 30.0, 30.0, 30.0]


def test_http_check_without_retries(server: HttpServer) -> None:
    server.route("/healthz", Reply(500))
    clock = FakeClock()

    result = check({"http": {"url": server.url("/healthz"), "retries": 0}}, clock)

    assert result.message == f"GET {server.url('/healthz')}: status 500, expected 200"
    assert clock.sleeps == []


def test_http_check_status_list(server: HttpServer) -> None:
    server.route("/healthz", Reply(503))

    result = check({"http": {"url": server.url("/healthz"), "status": [200, 204],
                             "retries": 0}})

    assert result.message == f"GET {server.url('/healthz')}: status 503, expected 200 or 204"


def test_http_check_method_and_headers(server: HttpServer) -> None:
    server.route("/ready", Reply(204))

    result = check({"http": {"url": server.url("/ready"), "method": "HEAD", "status": 204,
                             "headers": {"Authorization": "Bearer s3cret-token"}}})

    assert result.ok
    assert server.requests[0].method == "HEAD"
    assert server.requests[0].headers["Authorization"] == "Bearer s3cret-token"
    assert server.requests[0].headers["User-Agent"] == f"shipline/{__version__}"
    assert "s3cret" not in result.message


def test_http_check_does_not_follow_redirects(server: HttpServer) -> None:
    server.route("/healthz", Reply(302, headers={"Location": "/login"}))
    server.route("/login", Reply(200, "sign in"))

    result = check({"http": {"url": server.url("/healthz"), "retries": 0}})

    assert result.message == f"GET {server.url('/healthz')}: status 302, expected 200"
    assert [request.path for request in server.requests] == ["/healthz"]


def test_http_check_follows_redirects_when_asked(server: HttpServer) -> None:
    server.route("/healthz", Reply(302, headers={"Location": "/ok"}))
    server.route("/ok", Reply(200))

    result = check({"http": {"url": server.url("/healthz"), "follow_redirects": True}})

    assert result.ok


def test_http_check_fills_placeholders(server: HttpServer) -> None:
    server.route("/web-1/healthz", Reply(200))

    result = check({"http": {"url": server.url("/{instance}/healthz")}},
                   placeholders={"instance": "web-1"})

    assert result.ok
    assert result.message == f"GET {server.url('/web-1/healthz')}: status 200"


def test_http_check_unknown_placeholder(server: HttpServer) -> None:
    url = server.url("/{instance}")

    with pytest.raises(TemplateError) as caught:
        check({"http": {"url": url}}, placeholders={"version": "1.2"})

    assert str(caught.value) == (
        f"unknown placeholder '{{instance}}' in URL '{url}' (available: version)"
    )


# -- HTTP: body ----------------------------------------------------------------------------


def test_http_check_body_contains(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, "status: ready"))

    result = check({"http": {"url": server.url("/healthz"), "body_contains": "ready"}})

    assert result.ok


def test_http_check_body_missing_text(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, "status: starting"))

    result = check({"http": {"url": server.url("/healthz"), "body_contains": "ready",
                             "retries": 0}})

    assert result.message == (
        f"GET {server.url('/healthz')}: response body does not contain 'ready'"
    )


def test_http_check_output_keeps_body_start() -> None:
    with HttpServer() as server:
        server.route("/big", Reply(500, "x" * 10000))

        result = check({"http": {"url": server.url("/big"), "retries": 0}})

    assert result.output == "HTTP 500 Internal Server Error\n" + "x" * 4096 + (
        "\n[... 5904 more characters]"
    )


def test_http_check_json_field_equals(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, '{"status": "ok", "checks": {"db": "up"}}'))

    result = check({"http": {"url": server.url("/healthz"),
                             "json": {"path": "checks.db", "equals": "up"}}})

    assert result.ok


def test_http_check_json_field_differs(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, '{"checks": {"db": "down"}}'))

    result = check({"http": {"url": server.url("/healthz"), "retries": 0,
                             "json": {"path": "checks.db", "equals": "up"}}})

    assert result.message == (
        f'GET {server.url("/healthz")}: JSON field \'checks.db\' is "down", expected "up"'
    )


def test_http_check_json_field_missing(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, '{"checks": {}}'))

    result = check({"http": {"url": server.url("/healthz"), "retries": 0,
                             "json": {"path": "checks.db"}}})

    assert result.message == f"GET {server.url('/healthz')}: JSON field 'checks.db' is missing"


def test_http_check_json_list_index(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, '{"nodes": [{"up": true}, {"up": false}]}'))

    result = check({"http": {"url": server.url("/healthz"), "retries": 0,
                             "json": {"path": "nodes.1.up", "equals": True}}})

    assert result.message == (
        f"GET {server.url('/healthz')}: JSON field 'nodes.1.up' is false, expected true"
    )


def test_http_check_json_true_is_not_one(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, '{"ready": 1}'))

    result = check({"http": {"url": server.url("/healthz"), "retries": 0,
                             "json": {"path": "ready", "equals": True}}})

    assert not result.ok


def test_http_check_invalid_json(server: HttpServer) -> None:
    server.route("/healthz", Reply(200, "<html>ok</html>"))

    result = check({"http": {"url": server.url("/healthz"), "retries": 0,
                             "json": {"path": "status", "equals": "ok"}}})

    assert result.message == (
        f"GET {server.url('/healthz')}: response body is not valid JSON: "
        "Expecting value: line 1 column 1 (char 0)"
    )


# -- HTTP: connection problems -------------------------------------------------------------


def test_http_check_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/healthz"
    clock = FakeClock()

    result = check({"http": {"url": url, "retries": 1}}, clock)

    assert not result.ok
    assert result.message == f"GET {url}: connection refused (after 2 attempts)"
    assert clock.sleeps == [1.0]


def test_http_check_timeout(server: HttpServer) -> None:
    server.route("/slow", Reply(200, delay=5))
    started = time.monotonic()

    result = check({"http": {"url": server.url("/slow"), "timeout": "200ms", "retries": 0}})

    assert time.monotonic() - started < 2.0
    assert result.message == f"GET {server.url('/slow')}: timed out after 200ms"


def test_http_check_invalid_url_is_not_retried() -> None:
    clock = FakeClock()

    result = check({"http": {"url": "127.0.0.1:8080/healthz"}}, clock)

    assert result.message.startswith("GET 127.0.0.1:8080/healthz: invalid URL: ")
    assert result.attempts == 1
    assert clock.sleeps == []


def test_http_check_tls_with_ca_file(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    with HttpServer(tls=(cert, key)) as server:
        server.route("/healthz", Reply(200))

        result = check({"http": {"url": server.url("/healthz"), "ca_file": "cert.pem"}},
                       cwd=tmp_path)

    assert result.ok


def test_http_check_tls_untrusted(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    with HttpServer(tls=(cert, key)) as server:
        server.route("/healthz", Reply(200))

        result = check({"http": {"url": server.url("/healthz"), "retries": 0}})

    assert result.message.startswith(
        f"GET {server.url('/healthz')}: TLS certificate verification failed: "
    )


def test_http_check_missing_ca_file(tmp_path: Path, server: HttpServer) -> None:
    clock = FakeClock()

    result = check({"http": {"url": server.url("/"), "ca_file": "missing.pem"}}, clock,
                   cwd=tmp_path)

    assert result.message == (
        f"GET {server.url('/')}: CA file not found: '{tmp_path / 'missing.pem'}'"
    )
    assert clock.sleeps == []


# -- cancellation --------------------------------------------------------------------------


class CancellingClock(FakeClock):
    """A fake clock that sets the cancel event during the first sleep, like SIGTERM would."""

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        if cancel is not None:
            cancel.set()
        return super().sleep(seconds, cancel)


def test_check_cancelled_during_backoff(server: HttpServer) -> None:
    server.route("/healthz", Reply(503))

    result = run_check({"http": {"url": server.url("/healthz")}}, clock=CancellingClock(),
                       cancel=threading.Event())

    assert result.cancelled
    assert not result.ok
    assert result.message == f"GET {server.url('/healthz')}: cancelled"
    assert result.attempts == 1


def test_check_cancelled_before_start(server: HttpServer) -> None:
    cancel = threading.Event()
    cancel.set()

    result = run_check({"http": {"url": server.url("/")}}, clock=FakeClock(), cancel=cancel)

    assert result.cancelled
    assert result.attempts == 0
    assert server.requests == []


def test_command_check_cancel_stops_command() -> None:
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    started = time.monotonic()

    result = run_check({"command": "sleep 60"}, clock=FakeClock(), cancel=cancel)

    assert time.monotonic() - started < 1.0
    assert result.cancelled


# -- command checks ------------------------------------------------------------------------


def test_command_check_passes() -> None:
    result = check({"command": "sh -c 'echo all good'"})

    assert result.ok
    assert result.message == "command 'sh -c 'echo all good'': exit code 0"
    assert result.output == "all good\n"
    assert result.data == {"attempts": 1, "exit_code": 0}


def test_command_check_fails_with_retries() -> None:
    clock = FakeClock()

    result = check({"command": {"command": "false", "retries": 2, "backoff": "2s"}}, clock)

    assert not result.ok
    assert result.message == "command 'false': exit code 1 (after 3 attempts)"
    assert clock.sleeps == [2.0, 4.0]


def test_command_check_not_retried_by_default() -> None:
    clock = FakeClock()

    result = check({"command": "false"}, clock)

    assert result.attempts == 1
    assert clock.sleeps == []


def test_command_check_not_found_is_not_retried() -> None:
    clock = FakeClock()

    result = check({"command": {"command": "no-such-check-command", "retries": 3}}, clock)

    assert result.message == (
        "command 'no-such-check-command': command not found: 'no-such-check-command'"
    )
    assert clock.sleeps == []


def test_command_check_timeout() -> None:
    result = check({"command": {"command": "sleep 60", "timeout": "200ms"}})

    assert result.message == "command 'sleep 60': timed out after 200ms"


def test_command_check_placeholders_and_cwd(tmp_path: Path) -> None:
    (tmp_path / "web-1.txt").write_text("healthy\n")

    result = check({"command": "cat {instance}.txt"}, placeholders={"instance": "web-1"},
                   cwd=tmp_path)

    assert result.ok
    assert result.output == "healthy\n"


def test_command_check_shell_quotes_placeholders() -> None:
    result = check({"command": {"command": "test {version} = 'a b'", "shell": True}},
                   placeholders={"version": "a b"})

    assert result.ok
    assert result.message == "command 'test 'a b' = 'a b'': exit code 0"


# -- describing checks -------------------------------------------------------------------


def test_describe_check() -> None:
    assert describe_check({"http": {"url": "http://127.0.0.1/", "method": "head"}}) == (
        "HEAD http://127.0.0.1/"
    )
    assert describe_check({"command": {"command": "smoke.sh"}}) == "smoke.sh"


def test_json_equal_compares_like_json() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal("1", 1)
    assert json_equal({"a": [1, True]}, {"a": (1, True)})
    assert not json_equal({"a": [1, True]}, {"a": [1, 1]})
