from __future__ import annotations

import http.client
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.localrouter import Backend, LocalRouter, RoutingTable
from pipeline.target import Capability


class _EchoHandler(BaseHTTPRequestHandler):
    """Respond with the server's name, the method, path, body and two request headers."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({
            "backend": self.server.name,  # type: ignore[attr-defined]
            "method": self.command,
            "path": self.path,
            "body": self.rfile.read(length).decode(),
            "host": self.headers.get("Host"),
            "forwarded_for": self.headers.get("X-Forwarded-For"),
        }).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", self.server.name)  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


@pytest.fixture
def start_backend() -> Iterator[Callable[[str], int]]:
    """Start an HTTP server on 127.0.0.1 that responds with ``name``; return its port."""
    servers: list[_EchoServer] = []

    def start(name: str) -> int:
        server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def router() -> Iterator[LocalRouter]:
    with LocalRouter() as started:
        yield started


@pytest.fixture
def two_slots(router: LocalRouter, start_backend: Callable[[str], int]) -> LocalRouter:
    """The router with blue-1 (version 1.0.0) active and green-1 (version 2.0.0) idle."""
    router.add_backend("blue", Backend("blue-1", start_backend("blue-1"), "1.0.0"))
    router.add_backend("green", Backend("green-1", start_backend("green-1"), "2.0.0"))
    router.switch("blue")
    return router


def _request(router: LocalRouter, method: str = "GET", path: str = "/",
             body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(router.endpoint() or "")
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=5)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _slots_of(router: LocalRouter, count: int) -> list[str]:
    return [_request(router)[1]["X-Shipline-Slot"] for _ in range(count)]


@pytest.mark.parametrize("weight", [0, 20, 50, 100])
def test_router_weight_gives_exact_share(two_slots: LocalRouter, weight: int) -> None:
    two_slots.set_weight("green", weight)

    counts = Counter(_slots_of(two_slots, 100))

    assert counts["green"] == weight
    assert counts["blue"] == 100 - weight


def test_router_weight_spreads_canary_evenly(two_slots: LocalRouter) -> None:
    two_slots.set_weight("green", 20)

    slots = _slots_of(two_slots, 10)

    assert slots == ["blue", "blue", "green", "blue", "blue"] * 2


def test_router_weight_exact_under_concurrent_requests(two_slots: LocalRouter) -> None:
    two_slots.set_weight("green", 30)
    slots: list[str] = []
    lock = threading.Lock()

    def send(count: int) -> None:
        for _ in range(count):
            slot = _request(two_slots)[1]["X-Shipline-Slot"]
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=send, args=(10,)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(slots)["green"] == 30


def test_router_switch_sends_everything_to_slot(two_slots: LocalRouter) -> None:
    two_slots.set_weight("green", 20)

    two_slots.switch("green")

    assert two_slots.active_slot() == "green"
    assert set(_slots_of(two_slots, 10)) == {"green"}
    assert two_slots.table.canary() is None


def test_router_round_robin_within_slot(
    router: LocalRouter, start_backend: Callable[[str], int]
) -> None:
    router.add_backend("blue", Backend("blue-1", start_backend("blue-1"), "1.0.0"))
    router.add_backend("blue", Backend("blue-2", start_backend("blue-2"), "1.0.0"))
    router.switch("blue")

    names = [json.loads(_request(router)[2])["backend"] for _ in range(4)]

    assert names == ["blue-1", "blue-2", "blue-1", "blue-2"]


def test_router_headers_name_version_and_slot(two_slots: LocalRouter) -> None:
    two_slots.set_weight("green", 100)

    status, headers, _body = _request(two_slots)

    assert status == 200
    assert headers["X-Shipline-Version"] == "2.0.0"
    assert headers["X-Shipline-Slot"] == "green"
    assert headers["X-Backend"] == "green-1"


def test_router_forwards_method_path_body_and_status(two_slots: LocalRouter) -> None:
    status, headers, body = _request(two_slots, "POST", "/orders?id=7", b"hello")
    echoed = json.loads(body)

    assert status == 201
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/orders?id=7"
    assert echoed["body"] == "hello"
    assert echoed["forwarded_for"] == "127.0.0.1"
    assert echoed["host"] == f"127.0.0.1:{two_slots.table.backends('blue')[0].port}"
    assert headers["Content-Length"] == str(len(body))


def test_router_head_keeps_backend_length(two_slots: LocalRouter) -> None:
    _status, get_headers, _body = _request(two_slots, "GET")

    status, headers, body = _request(two_slots, "HEAD")

    assert status == 200
    assert body == b""
    assert headers["Content-Length"] == str(len(json.dumps({
        "backend": "blue-1", "method": "HEAD", "path": "/", "body": "",
        "host": f"127.0.0.1:{two_slots.table.backends('blue')[0].port}",
        "forwarded_for": "127.0.0.1",
    })))
    assert get_headers["X-Shipline-Slot"] == "blue"


def test_router_slot_without_backend_answers_502(two_slots: LocalRouter) -> None:
    two_slots.remove_backend("green-1")
    two_slots.set_weight("green", 100)

    status, headers, body = _request(two_slots)

    assert status == 502
    assert body == b"slot 'green' has no running instance\n"
    assert headers["X-Shipline-Slot"] == "green"
    assert "X-Shipline-Version" not in headers


def test_router_without_active_slot_answers_502(router: LocalRouter) -> None:
    status, _headers, body = _request(router)

    assert status == 502
    assert body == b"no slot is active on the local router yet\n"


def test_router_unreachable_backend_answers_502(
    router: LocalRouter, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    router.add_backend("blue", Backend("blue-1", closed_port, "1.0.0"))
    router.switch("blue")

    status, headers, body = _request(router)
    _request(router)

    assert status == 502
    assert body.decode().startswith("instance blue-1 (version 1.0.0) failed: ")
    assert headers["X-Shipline-Version"] == "1.0.0"
    warnings = [message for message in caplog.messages if "failed" in message]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"local router: instance blue-1 (version 1.0.0, port {closed_port}) failed: ")


def test_router_removed_backend_gets_no_requests(
    router: LocalRouter, start_backend: Callable[[str], int]
) -> None:
    router.add_backend("blue", Backend("blue-1", start_backend("blue-1"), "1.0.0"))
    router.add_backend("blue", Backend("blue-2", start_backend("blue-2"), "1.0.0"))
    router.switch("blue")

    router.remove_backend("blue-1")
    names = {json.loads(_request(router)[2])["backend"] for _ in range(4)}

    assert names == {"blue-2"}


def test_router_add_backend_replaces_same_name() -> None:
    table = RoutingTable(("blue", "green"))
    table.add_backend("blue", Backend("blue-1", 1001, "1.0.0"))

    table.add_backend("green", Backend("blue-1", 1002, "2.0.0"))

    assert table.backends("blue") == []
    assert table.backends("green") == [Backend("blue-1", 1002, "2.0.0")]


def test_router_chunked_body_answers_411(two_slots: LocalRouter) -> None:
    address = urlsplit(two_slots.endpoint() or "")
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=5)
    connection.request("POST", "/", body=iter([b"abc"]), encode_chunked=True,
                       headers={"Transfer-Encoding": "chunked"})
    response = connection.getresponse()

    assert response.status == 411
    assert response.read() == b"the local router needs a Content-Length for request bodies\n"
    connection.close()


def test_set_weight_rejects_active_slot() -> None:
    table = RoutingTable(("blue", "green"))
    table.switch("blue")

    with pytest.raises(ValueError) as raised:
        table.set_weight("blue", 20)

    assert str(raised.value) == ("slot 'blue' is the active slot and already receives every "
                                 "request not sent elsewhere; use switch() instead")


@pytest.mark.parametrize("weight", [-1, 101, 2.5, True])
def test_set_weight_rejects_invalid_weight(weight: Any) -> None:
    table = RoutingTable(("blue", "green"))
    table.switch("blue")

    with pytest.raises(ValueError) as raised:
        table.set_weight("green", weight)

    assert str(raised.value) == f"invalid weight {weight!r}: use a whole number from 0 to 100"


def test_set_weight_rejects_unknown_slot() -> None:
    table = RoutingTable(("blue", "green"))

    with pytest.raises(ValueError) as raised:
        table.set_weight("red", 10)

    assert str(raised.value) == "unknown slot 'red': use one of blue, green"


def test_set_weight_needs_active_slot() -> None:
    table = RoutingTable(("blue", "green"))

    with pytest.raises(ValueError) as raised:
        table.set_weight("green", 10)

    assert str(raised.value) == "cannot send a share to slot 'green': no slot is active yet"


def test_set_weight_zero_clears_canary(two_slots: LocalRouter) -> None:
    two_slots.set_weight("green", 40)

    two_slots.set_weight("green", 0)

    assert two_slots.table.canary() is None
    assert set(_slots_of(two_slots, 5)) == {"blue"}


def test_router_capabilities_are_weights_and_slots() -> None:
    assert LocalRouter().capabilities() == frozenset({Capability.WEIGHTS, Capability.SLOTS})


def test_router_endpoint_none_before_start() -> None:
    assert LocalRouter().endpoint() is None


def test_router_close_releases_port() -> None:
    router = LocalRouter().start()
    port = urlsplit(router.endpoint() or "").port or 0

    router.close()
    router.close()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert router.endpoint() is None


def test_table_drain_waits_for_request_end() -> None:
    table = RoutingTable(("blue", "green"))
    backend = Backend("blue-1", 1001, "1.0.0")
    table.add_backend("blue", backend)
    table.switch("blue")
    route = table.choose()
    assert route is not None
    assert route.backend == backend
    table.remove_backend("blue-1")

    assert table.drain("blue-1", timeout=0.05) is False

    ended = threading.Timer(0.05, table.request_ended, args=(backend,))
    ended.start()
    assert table.drain("blue-1", timeout=5) is True
    ended.join()


def test_table_drain_of_idle_backend_returns_at_once() -> None:
    table = RoutingTable(("blue", "green"))

    assert table.drain("blue-1", timeout=0) is True


class _HeldHandler(BaseHTTPRequestHandler):
    """Respond only once the server's ``release`` event is set."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.arrived.set()  # type: ignore[attr-defined]
        self.server.release.wait(10)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"done")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_router_remove_backend_drains_request_under_way(router: LocalRouter) -> None:
    backend = _EchoServer(("127.0.0.1", 0), _HeldHandler)
    backend.arrived = threading.Event()  # type: ignore[attr-defined]
    backend.release = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        router.add_backend("blue", Backend("blue-1", backend.server_address[1], "1.0.0"))
        router.switch("blue")
        answers: list[tuple[int, dict[str, str], bytes]] = []
        client = threading.Thread(target=lambda: answers.append(_request(router)))
        client.start()
        assert backend.arrived.wait(5)  # type: ignore[attr-defined]

        removal = threading.Thread(target=router.remove_backend, args=("blue-1",),
                                   kwargs={"drain": True})
        removal.start()
        removal.join(timeout=0.3)
        still_draining = removal.is_alive()
        backend.release.set()  # type: ignore[attr-defined]
        removal.join(timeout=5)
        client.join(timeout=5)
    finally:
        backend.release.set()  # type: ignore[attr-defined]
        backend.shutdown()
        backend.server_close()

    assert still_draining
    assert not removal.is_alive()
    assert answers[0][0] == 200
    assert answers[0][2] == b"done"
    assert _request(router)[0] == 502


def test_router_drain_gives_up_after_backend_timeout(caplog: pytest.LogCaptureFixture) -> None:
    router = LocalRouter(backend_timeout=0.1)
    router.add_backend("blue", Backend("blue-1", 1001, "1.0.0"))
    router.switch("blue")
    # The table counts a request under way to blue-1 that never ends.
    assert router.table.choose() is not None

    router.remove_backend("blue-1", drain=True)

    assert "local router: requests to blue-1 still under way after 0.1s" in caplog.text


def test_table_drain_all_waits_for_every_backend() -> None:
    table = RoutingTable(("blue", "green"))
    blue = Backend("blue-1", 1001, "1.0.0")
    green = Backend("green-1", 1002, "2.0.0")
    table.add_backend("blue", blue)
    table.add_backend("green", green)
    table.switch("blue")
    table.set_weight("green", 50)
    chosen = [route.backend for route in (table.choose(), table.choose()) if route]
    assert sorted(backend.name for backend in chosen if backend) == ["blue-1", "green-1"]

    table.request_ended(blue)
    assert table.drain_all(timeout=0.05) is False

    table.request_ended(green)
    assert table.drain_all(timeout=0) is True


def test_router_drain_all_warns_after_backend_timeout(caplog: pytest.LogCaptureFixture) -> None:
    router = LocalRouter(backend_timeout=0.1)
    router.add_backend("blue", Backend("blue-1", 1001, "1.0.0"))
    router.switch("blue")
    assert router.table.choose() is not None

    router.remove_backend("blue-1")
    router.drain_all()

    assert "local router: requests still under way after 0.1s" in caplog.text
