"""Record where the instances of a ``local`` target are, for the integration tests.

Usage: ``snapshot.py ROUTER_URL EVENTS OUT [--requests N]``

Run from a ``when: always`` stage, after the deploy stage and its rollback but before
the run ends and the target stops its processes. Writes OUT as JSON:

- ``router``: of N requests to ``ROUTER_URL/``, how many got their response from each
  ``"SLOT INSTANCE VERSION"`` (read from the router's ``X-Shipline-Slot`` header and
  the demo service's body), and how many failed, as ``"error STATUS"`` or
  ``"error EXCEPTION"``;
- ``running``: instance name to the version that its process returns on ``/version``,
  for every process that the EVENTS log of ``service.py`` shows started and not
  stopped.

Always exits 0 unless it crashes, so that the run's exit code is the deploy's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 5.0


def get(host: str, port: int, path: str) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def probe_router(url: str, requests: int) -> dict[str, int]:
    address = urlsplit(url)
    responses: Counter[str] = Counter()
    for _ in range(requests):
        try:
            status, headers, body = get(address.hostname or "", address.port or 80, "/")
        except OSError as exc:
            responses[f"error {type(exc).__name__}"] += 1
            continue
        if status != 200:
            responses[f"error {status}"] += 1
            continue
        document = json.loads(body)
        slot = headers.get("X-Shipline-Slot", "?")
        responses[f"{slot} {document['instance']} {document['version']}"] += 1
    return dict(sorted(responses.items()))


def running_versions(events: Path) -> dict[str, str]:
    latest: dict[str, dict[str, Any]] = {}
    stopped: set[int] = set()
    for line in events.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["event"] == "start":
            latest[event["instance"]] = event
        elif event["event"] == "stop":
            stopped.add(event["pid"])

    versions = {}
    for instance, event in sorted(latest.items()):
        if event["pid"] in stopped:
            continue
        try:
            status, _headers, body = get("127.0.0.1", event["port"], "/version")
        except OSError as exc:
            versions[instance] = f"error {type(exc).__name__}"
            continue
        versions[instance] = body.strip() if status == 200 else f"error {status}"
    return versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("router")
    parser.add_argument("events", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--requests", type=int, default=20)
    options = parser.parse_args()

    snapshot = {"router": probe_router(options.router, options.requests),
                "running": running_versions(options.events)}
    options.out.write_text(json.dumps(snapshot, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
