"""A weighted HTTP reverse proxy on loopback, the router of the ``local`` target.

The router has two or more slots, each with zero or more backends (``host:port`` of
a process and the version it runs). One slot is active and receives all traffic that
no weight sends elsewhere; one other slot may receive a canary share in percent.

Choices are deterministic so that tests and analyses can count them:

- Between the active slot and the canary slot, smooth weighted round robin: over any
  100 consecutive requests after a change of weight or slot, the canary slot receives
  exactly ``weight`` of them, spread evenly.
- Within a slot, plain round robin over its backends.

Every proxied response carries ``X-Shipline-Slot`` and ``X-Shipline-Version`` so that
probe traffic can attribute each response to a version. A slot without backends, or a
backend that cannot be reached, gets a ``502`` with a one-line explanation. The router
counts the requests under way to each backend, so that a backend being removed can be
drained: the local target stops an instance's process only once the requests already
sent to it have ended.

Only HTTP/1.1 requests with a ``Content-Length`` body (or none) are forwarded; a
chunked request body is answered with ``411 Length Required``.
"""

from __future__ import annotations

import http.client
import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.target import Capability

logger = logging.getLogger("shipline")

#: Seconds the router waits for a backend to connect and to respond.
BACKEND_TIMEOUT = 10.0

SLOT_HEADER = "X-Shipline-Slot"
VERSION_HEADER = "X-Shipline-Version"

#: Headers that describe one connection and must not be forwarded (RFC 9110, 7.6.1).
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})


@dataclass(frozen=True)
class Backend:
    """One process that serves a slot: its instance name, loopback port and version."""

    name: str
    port: int
    version: str
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Route:
    """The destination of one request: a slot and, if the slot has any, one of its backends."""

    slot: str
    backend: Backend | None


class RoutingTable:
    """The router's state and its choice of backend per request. Thread-safe.

    Separate from the HTTP server so that the choice can be tested without sockets.
    """

    def __init__(self, slots: tuple[str, ...]) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        #: Notified whenever a request to a backend ends, for drain().
        self._request_ended = threading.Condition(self._lock)
        #: Requests forwarded to each backend (by name) that have not ended yet.
        self._in_flight: dict[str, int] = {}
        self._active: str | None = None
        self._canary: str | None = None
        self._weight = 0
        self._backends: dict[str, list[Backend]] = {slot: [] for slot in slots}
        self._next_backend: dict[str, int] = dict.fromkeys(slots, 0)
        # Smooth weighted round robin: each slot's running score.
        self._score_active = 0
        self._score_canary = 0

    @property
    def slots(self) -> tuple[str, ...]:
        return self._slots

    def active_slot(self) -> str | None:
        with self._lock:
            return self._active

    def canary(self) -> tuple[str, int] | None:
        """Return the slot that receives a share and its weight, or ``None``."""
        with self._lock:
            if self._canary is None:
                return None
            return self._canary, self._weight

    def backends(self, slot: str) -> list[Backend]:
        self._check_slot(slot)
        with self._lock:
            return list(self._backends[slot])

    def add_backend(self, slot: str, backend: Backend) -> None:
        """Serve ``slot`` from ``backend`` too, replacing any backend of the same name."""
        self._check_slot(slot)
        with self._lock:
            self._drop(backend.name)
            self._backends[slot].append(backend)

    def remove_backend(self, name: str) -> bool:
        """Stop sending requests to the backend ``name``; return whether it was there."""
        with self._lock:
            return self._drop(name)

    def switch(self, slot: str) -> None:
        """Make ``slot`` active and clear any canary weight."""
        self._check_slot(slot)
        with self._lock:
            self._active = slot
            self._canary = None
            self._weight = 0
            self._reset_scores()

    def set_weight(self, slot: str, weight: int) -> None:
        """Send ``weight`` percent of requests to ``slot``; 0 clears the canary share.

        Raises ValueError for an unknown slot, a weight outside 0-100, no active slot
        yet, or ``slot`` being the active slot (use :meth:`switch` to move all traffic).
        """
        self._check_slot(slot)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise ValueError(f"invalid weight {weight!r}: use a whole number from 0 to 100")

        with self._lock:
            if self._active is None:
                raise ValueError(f"cannot send a share to slot '{slot}': no slot is active yet")
            if slot == self._active:
                raise ValueError(f"slot '{slot}' is the active slot and already receives "
                                 "every request not sent elsewhere; use switch() instead")
            self._canary = slot if weight > 0 else None
            self._weight = weight
            self._reset_scores()

    def choose(self) -> Route | None:
        """Pick the slot and backend for the next request; ``None`` if no slot is active.

        A backend picked counts as busy until :meth:`request_ended` is called for it.
        """
        with self._lock:
            if self._active is None:
                return None
            slot = self._choose_slot(self._active)
            backend = self._next_in(slot)
            if backend is not None:
                self._in_flight[backend.name] = self._in_flight.get(backend.name, 0) + 1
            return Route(slot, backend)

    def request_ended(self, backend: Backend) -> None:
        """Record that a request that :meth:`choose` sent to ``backend`` has ended."""
        with self._lock:
            left = self._in_flight.get(backend.name, 0) - 1
            if left > 0:
                self._in_flight[backend.name] = left
            else:
                self._in_flight.pop(backend.name, None)
            self._request_ended.notify_all()

    def drain_all(self, timeout: float) -> bool:
        """Wait until no request to any backend is under way, at most ``timeout``
        seconds; return whether none is."""
        with self._lock:
            return self._request_ended.wait_for(lambda: not self._in_flight, timeout)

    def drain(self, name: str, timeout: float) -> bool:
        """Wait until no request to the backend ``name`` is under way, at most
        ``timeout`` seconds; return whether none is. Remove the backend first, or new
        requests keep arriving."""
        with self._lock:
            return self._request_ended.wait_for(lambda: name not in self._in_flight, timeout)

    def _choose_slot(self, active: str) -> str:
        if self._canary is None:
            return active

        # Smooth weighted round robin with weights (100 - w, w): raise each score by its
        # weight, pick the higher score, then lower the picked one by the total (100).
        self._score_active += 100 - self._weight
        self._score_canary += self._weight
        if self._score_canary > self._score_active:
            self._score_canary -= 100
            return self._canary
        self._score_active -= 100
        return active

    def _next_in(self, slot: str) -> Backend | None:
        backends = self._backends[slot]
        if not backends:
            return None
        index = self._next_backend[slot] % len(backends)
        self._next_backend[slot] = index + 1
        return backends[index]

    def _drop(self, name: str) -> bool:
        for backends in self._backends.values():
            for backend in backends:
                if backend.name == name:
                    backends.remove(backend)
                    return True
        return False

    def _reset_scores(self) -> None:
        self._score_active = 0
        self._score_canary = 0

    def _check_slot(self, slot: str) -> None:
        if slot not in self._slots:
            raise ValueError(f"unknown slot {slot!r}: use one of {', '.join(self._slots)}")


class LocalRouter:
    """The HTTP proxy in front of a :class:`RoutingTable`; implements ``Router``.

    :meth:`start` binds ``127.0.0.1:port`` (0 picks a free port) and serves from a
    background thread until :meth:`close`. Usable as a context manager.
    """

    def __init__(self, slots: tuple[str, ...] = ("blue", "green"), port: int = 0,
                 backend_timeout: float = BACKEND_TIMEOUT) -> None:
        self.table = RoutingTable(slots)
        self._port = port
        self._backend_timeout = backend_timeout
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LocalRouter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> LocalRouter:
        """Bind the port and serve in a daemon thread; raises OSError if the port is taken."""
        if self._server is not None:
            return self
        server = _ProxyServer(("127.0.0.1", self._port), self.table, self._backend_timeout)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name="shipline-local-router", daemon=True,
        )
        self._thread.start()
        logger.info("local router listening on %s", self.endpoint())
        return self

    def capabilities(self) -> frozenset[Capability]:
        return frozenset({Capability.WEIGHTS, Capability.SLOTS})

    def endpoint(self) -> str | None:
        """Return ``http://127.0.0.1:PORT``, or ``None`` before :meth:`start`."""
        if self._server is None:
            return None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def active_slot(self) -> str | None:
        return self.table.active_slot()

    def set_weight(self, slot: str, weight: int) -> None:
        self.table.set_weight(slot, weight)
        logger.info("local router: %d%% of requests to slot %s", weight, slot)

    def switch(self, slot: str) -> None:
        self.table.switch(slot)
        logger.info("local router: all requests to slot %s", slot)

    def add_backend(self, slot: str, backend: Backend) -> None:
        self.table.add_backend(slot, backend)
        logger.debug("local router: %s (version %s, port %d) serves slot %s",
                     backend.name, backend.version, backend.port, slot)

    def remove_backend(self, name: str, drain: bool = False) -> None:
        """Stop sending requests to the backend ``name``. With ``drain``, also wait until
        the requests already sent to it have ended, so that stopping its process next
        does not cut them off with a 502. The wait lasts at most the backend timeout,
        and a warning names a backend that still had requests under way then."""
        if not self.table.remove_backend(name):
            return
        logger.debug("local router: %s no longer serves", name)
        if drain and not self.table.drain(name, self._backend_timeout):
            logger.warning("local router: requests to %s still under way after %ss",
                           name, self._backend_timeout)

    def drain_all(self) -> None:
        """Wait until the requests already sent to backends have ended, at most the
        backend timeout. Remove the backends first, or new requests keep arriving."""
        if not self.table.drain_all(self._backend_timeout):
            logger.warning("local router: requests still under way after %ss",
                           self._backend_timeout)

    def close(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("local router on port %d stopped", server.server_address[1])


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections under parallel probe traffic, and
    # each dropped connection waits for a SYN retransmission, about one second on Linux.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], table: RoutingTable,
                 backend_timeout: float) -> None:
        self.table = table
        self.backend_timeout = backend_timeout
        self._failing: set[str] = set()
        self._failing_lock = threading.Lock()
        super().__init__(address, _ProxyHandler)

    def backend_failed(self, backend: Backend, error: str) -> None:
        """Log a backend's failure once, until the backend responds again."""
        with self._failing_lock:
            if backend.name in self._failing:
                return
            self._failing.add(backend.name)
        logger.warning("local router: instance %s (version %s, port %d) failed: %s",
                       backend.name, backend.version, backend.port, error)

    def backend_responded(self, backend: Backend) -> None:
        with self._failing_lock:
            self._failing.discard(backend.name)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request (a client that hung up, usually) instead of printing it."""
        logger.debug("local router: request from %s failed", client_address, exc_info=True)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add about 40 ms to every
    # keep-alive response on loopback, which probes would measure as latency.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._proxy()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing per request: analyses send many."""

    def _proxy(self) -> None:
        # The body is read before a backend is chosen (and counted as busy), so that a
        # slow client does not hold up the removal of a backend.
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._reply_error(411, "the local router needs a Content-Length for request bodies")
            return
        length = self.headers.get("Content-Length", "0").strip() or "0"
        if not length.isdigit():
            self._reply_error(400, f"invalid Content-Length {length!r}")
            return
        body = self.rfile.read(int(length))

        route = self.server.table.choose()
        if route is None:
            self._reply_error(502, "no slot is active on the local router yet")
            return
        if route.backend is None:
            self._reply_error(502, f"slot '{route.slot}' has no running instance", route.slot)
            return
        self._forward(route.slot, route.backend, body)

    def _forward(self, slot: str, backend: Backend, body: bytes) -> None:
        connection = http.client.HTTPConnection(backend.host, backend.port,
                                                timeout=self.server.backend_timeout)
        try:
            connection.request(self.command, self.path, body=body or None,
                               headers=self._request_headers(backend))
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            error = str(exc) or type(exc).__name__
            self.server.backend_failed(backend, error)
            self._reply_error(502, f"instance {backend.name} (version {backend.version}) "
                              f"failed: {error}", slot, backend.version)
            return
        finally:
            connection.close()
            # The backend's part ends here, before the response goes to a client that
            # may be slow to read it.
            self.server.table.request_ended(backend)

        self.server.backend_responded(backend)

        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self._finish(slot, backend.version, data, length)

    def _request_headers(self, backend: Backend) -> dict[str, str]:
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in _HOP_BY_HOP and name.lower() != "host"}
        headers["Host"] = f"{backend.host}:{backend.port}"
        headers["X-Forwarded-For"] = self.client_address[0]
        return headers

    def _reply_error(self, status: int, text: str, slot: str | None = None,
                     version: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self._finish(slot, version, f"{text}\n".encode())

    def _finish(self, slot: str | None, version: str | None, data: bytes,
                length: str | None = None) -> None:
        """Send the routing headers and ``data``; ``length`` is a HEAD answer's own length."""
        if slot is not None:
            self.send_header(SLOT_HEADER, slot)
        if version is not None:
            self.send_header(VERSION_HEADER, version)
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
