"""Rolling, blue-green and canary deploys on the ``local`` target, end to end.

Each instance is a real process, ``scripts/service.py`` (the demo service plus a log
of its starts and stops, and failures on request), behind the target's router on a
loopback port that the test chooses. Where every instance ends up is read in two ways:

- a ``when: always`` stage runs ``scripts/snapshot.py`` after the deploy and its
  rollback, while the target still runs. It sends requests through the router and
  reads the version of each live process;
- the events log of ``service.py`` shows every start and stop. A run stopped by SIGTERM
  skips the ``when: always`` stage, so interrupt tests rely on this log: the target
  stops its remaining processes only when the run ends, after the rollback.

Interrupt tests whose rollback moves traffic also watch the router from a thread of
the test until it closes (:func:`watching_router`), so they see where requests went
after the rollback.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integration.scripts.harness import (
    PAUSE,
    PAUSE_SETTLE,
    PYTHON,
    SCRIPTS,
    details_after,
    free_port,
    junit_cases,
    process_alive,
    result_type,
    run_and_interrupt,
    run_in_process,
    step_lines,
)

from pipeline.exitcodes import ExitCode
from pipeline.testing import CliResult

RunCli = Callable[..., CliResult]

EVENTS = "events.jsonl"
SNAPSHOT = "snapshot.json"

#: The arguments of ``service.py``, with the local target's placeholders.
INSTANCE_ARGUMENTS = (
    f"--events {EVENTS} --port {{port}} --version {{version}} --instance {{instance}}"
)
SERVICE_SCRIPT = f"{PYTHON} {shlex.quote(str(SCRIPTS / 'service.py'))}"
SERVICE = f"{SERVICE_SCRIPT} {INSTANCE_ARGUMENTS}"

#: The snapshot when only blue-1 runs, on the stable version, and serves every request.
BLUE_ONLY = {"router": {"blue blue-1 1.0.0": 20}, "running": {"blue-1": "1.0.0"}}
#: The same with two instances per slot: round robin splits the requests evenly.
BLUE_PAIR_ONLY = {
    "router": {"blue blue-1 1.0.0": 10, "blue blue-2 1.0.0": 10},
    "running": {"blue-1": "1.0.0", "blue-2": "1.0.0"},
}

#: Version 1.1.0 responds to its health path with status 503.
UNHEALTHY = {"DEMO_BEHAVIOUR": json.dumps({"1.1.0": {"healthy": False}})}

#: Long enough for 1.0.0 to start on a busy machine, short for an instance that never will.
SHORT_START = "1500ms"


# -- pipelines ---------------------------------------------------------------------------


def pipeline(port: int, strategy: str, *, instances: int = 1,
             env: dict[str, str] | None = None, start_timeout: str = "10s",
             command: str = SERVICE, **options: Any) -> dict[str, Any]:
    """Deploy 1.1.0 over the stable 1.0.0 with ``strategy``, then take a snapshot."""
    target = {
        "type": "local",
        "command": command,
        "stable": "1.0.0",
        "instances": instances,
        "start_timeout": start_timeout,
        "router_port": port,
        "env": env or {},
    }
    snapshot = " ".join([PYTHON, shlex.quote(str(SCRIPTS / "snapshot.py")),
                         f"http://127.0.0.1:{port}", EVENTS, SNAPSHOT])
    return {
        "version": 1,
        "name": "integration",
        "environments": {"demo": {"target": target}},
        "stages": [
            {
                "name": "upgrade",
                "environment": "demo",
                "steps": [{"deploy": {"version": "1.1.0", "strategy": strategy, **options}}],
            },
            {
                "name": "snapshot",
                "when": "always",
                "steps": [{"name": "snapshot", "gate": {"uses": "command",
                                                        "command": snapshot}}],
            },
        ],
    }


def install_release(folder: Path, version: str) -> str:
    """Create ``releases/VERSION/serve`` in ``folder`` and return a command template
    that starts ``releases/{version}/serve``: a version without the file is not found."""
    serve = folder / "releases" / version / "serve"
    serve.parent.mkdir(parents=True)
    serve.write_text(f'#!/bin/sh\nexec {SERVICE_SCRIPT} "$@"\n')
    serve.chmod(0o755)
    return f"releases/{{version}}/serve {INSTANCE_ARGUMENTS}"


# -- what the run left -------------------------------------------------------------------


def events(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / EVENTS).read_text().splitlines()
    return [json.loads(line) for line in lines]


def lifecycle(folder: Path, instance: str) -> list[str]:
    """Return ``"EVENT VERSION"`` for every start, stop, crash and hang of ``instance``."""
    return [f"{event['event']} {event['version']}" for event in events(folder)
            if event["instance"] == instance]


def stop_order(folder: Path) -> list[str]:
    """Return ``"INSTANCE VERSION"`` for every stop, in the order the processes stopped."""
    return [f"{event['instance']} {event['version']}" for event in events(folder)
            if event["event"] == "stop"]


def unstopped(folder: Path) -> list[str]:
    """Return ``"INSTANCE VERSION"`` of every process that logged a start or a hang but
    no stop."""
    stopped = {event["pid"] for event in events(folder) if event["event"] == "stop"}
    return [f"{event['instance']} {event['version']}" for event in events(folder)
            if event["event"] in ("start", "hang") and event["pid"] not in stopped]


def live_pids(folder: Path) -> list[int]:
    """Return the processes that any instance started and that still run."""
    return [event["pid"] for event in events(folder) if process_alive(event["pid"])]


def snapshot(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / SNAPSHOT).read_text())
    return result


def hanging(folder: Path, instance: str) -> Callable[[], bool]:
    return (folder / f"{instance}.hanging").exists


def router_serves(port: int, slot: str) -> Callable[[], bool]:
    """Return a check that one request through the router gets its response from ``slot``."""

    def check() -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/version")
            response = connection.getresponse()
            response.read()
        except OSError:
            return False
        finally:
            connection.close()
        return response.getheader("X-Shipline-Slot") == slot

    return check


@dataclass(frozen=True)
class Routed:
    """One request that the router handled while a test watched it."""

    #: ``time.monotonic()`` when the request was sent, and when its response was read.
    sent_at: float
    received_at: float
    #: ``"SLOT STATUS VERSION"`` from the response's status and routing headers; the
    #: version is missing from an error that no instance produced.
    label: str


def get_through_router(port: int) -> Routed | None:
    """Send one ``GET /version`` through the router; ``None`` if it does not listen."""
    sent_at = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/version")
        response = connection.getresponse()
        response.read()
    except OSError:
        return None
    finally:
        connection.close()
    parts = [response.getheader("X-Shipline-Slot", ""), str(response.status),
             response.getheader("X-Shipline-Version", "")]
    return Routed(sent_at, time.monotonic(), " ".join(part for part in parts if part))


#: Seconds between two requests of :func:`watching_router`. Each request opens two TCP
#: connections that then wait in TIME_WAIT, so a loop without a wait can use up the
#: ephemeral ports on a busy machine.
WATCH_INTERVAL = 0.01


@contextmanager
def watching_router(port: int) -> Iterator[list[Routed]]:
    """Send requests through the router, one every :data:`WATCH_INTERVAL` seconds, until
    the block ends.

    Yields the list that a background thread fills with every response. Requests that
    get no response (the router is not listening yet, or any more) are not recorded.
    """
    seen: list[Routed] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_INTERVAL):
            routed = get_through_router(port)
            if routed is not None:
                seen.append(routed)

    thread = threading.Thread(target=watch, name="router-watch", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(timeout=10)


def served_before(seen: list[Routed], until: float | None) -> set[str]:
    """Return the responses read in the last quarter second before ``until``, which the
    interrupt tests choose inside the pause they interrupt."""
    assert until is not None
    return {routed.label for routed in seen if until - 0.25 < routed.received_at < until}


#: What the router may return once the rollback has moved every request to blue: blue's
#: responses, and the errors of the end of the run. The target then takes the instances
#: out of the router ("slot 'blue' has no running instance", no version) and stops them,
#: which fails a request that was forwarded just before (with the version).
AFTER_ROLLBACK = {"blue 200 1.0.0", "blue 502", "blue 502 1.0.0"}


def served_after_green(seen: list[Routed], since: float | None) -> list[str]:
    """Return the responses to requests sent after ``since`` and after the last one that
    the router sent to green: what the router did once the rollback moved traffic."""
    assert since is not None
    labels = [routed.label for routed in seen if routed.sent_at > since]
    last_green = max((index for index, label in enumerate(labels)
                      if label.startswith("green")), default=-1)
    return labels[last_green + 1:]


def without_ports(message: str) -> str:
    """Replace the loopback ports in ``message``, which the target picks at run time."""
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", message)


# -- rolling -----------------------------------------------------------------------------


def test_rolling_failure_in_first_batch(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "rolling", instances=2,
                        env={"SERVICE_CRASH": "blue-1@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == (
        "1 of 2 instances failed and max_failures allows 0: blue-1: deploy failed: process "
        "exited with code 3 before it became healthy; its last output line: service.py: injected "
        "crash of "
        "blue-1@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 1 instance"
    )
    assert snapshot(tmp_path) == BLUE_PAIR_ONLY
    assert lifecycle(tmp_path, "blue-1") == [
        "start 1.0.0", "stop 1.0.0", "crash 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert lifecycle(tmp_path, "blue-2") == ["start 1.0.0", "stop 1.0.0"]
    assert lifecycle(tmp_path, "green-1") == []
    assert live_pids(tmp_path) == []


def test_rolling_failure_in_last_batch(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "rolling", instances=2,
                        env={"SERVICE_CRASH": "blue-2@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == (
        "1 of 2 instances failed and max_failures allows 0: blue-2: deploy failed: process "
        "exited with code 3 before it became healthy; its last output line: service.py: injected "
        "crash of "
        "blue-2@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 2 instances"
    )
    assert snapshot(tmp_path) == BLUE_PAIR_ONLY
    assert lifecycle(tmp_path, "blue-1") == [
        "start 1.0.0", "stop 1.0.0", "start 1.1.0", "stop 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert lifecycle(tmp_path, "blue-2") == [
        "start 1.0.0", "stop 1.0.0", "crash 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert live_pids(tmp_path) == []


def test_rolling_interrupt_during_pause(tmp_path: Path) -> None:
    document = pipeline(free_port(), "rolling", instances=2, pause=PAUSE,
                        checks=[{"command": "touch checked-batch"}])

    finished = run_and_interrupt(tmp_path, document, (tmp_path / "checked-batch").exists,
                                 "the checks after the first batch", settle=PAUSE_SETTLE)

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == (
        "interrupted during the pause after batch 1 of 2"
    )
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 1 instance"
    )
    assert "stage snapshot: skipped (the run was interrupted)" in finished.stdout
    assert lifecycle(tmp_path, "blue-1") == [
        "start 1.0.0", "stop 1.0.0", "start 1.1.0", "stop 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert lifecycle(tmp_path, "blue-2") == ["start 1.0.0", "stop 1.0.0"]
    assert live_pids(tmp_path) == []
    cases = junit_cases(tmp_path / "report.xml")
    assert result_type(cases["deploy 1.1.0 (rolling)"]) == "interrupted"
    assert result_type(cases["rollback: deploy 1.1.0 (rolling)"]) == "passed"


def test_rolling_health_never_passes(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "rolling", env=UNHEALTHY, start_timeout=SHORT_START)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert without_ports(step_lines(result.stdout)["deploy 1.1.0 (rolling)"].message) == (
        "1 of 1 instances failed and max_failures allows 0: blue-1: deploy failed: not healthy "
        "within 1s500ms: http://127.0.0.1:PORT/healthz answered 503; its last output line: "
        "service.py: 1.1.0 "
        "listening on http://127.0.0.1:PORT"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "blue-1") == [
        "start 1.0.0", "stop 1.0.0", "start 1.1.0", "stop 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert live_pids(tmp_path) == []


def test_rolling_hanging_start_times_out(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "rolling", env={"SERVICE_HANG": "*@1.1.0"},
                        start_timeout=SHORT_START)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert without_ports(step_lines(result.stdout)["deploy 1.1.0 (rolling)"].message) == (
        "1 of 1 instances failed and max_failures allows 0: blue-1: deploy failed: not healthy "
        "within 1s500ms: http://127.0.0.1:PORT/healthz failed: [Errno 111] Connection refused"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "blue-1") == [
        "start 1.0.0", "stop 1.0.0", "hang 1.1.0", "stop 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert live_pids(tmp_path) == []


def test_rolling_command_not_found(shipline_cli: RunCli, tmp_path: Path) -> None:
    command = install_release(tmp_path, "1.0.0")
    document = pipeline(free_port(), "rolling", command=command)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (rolling)"].message == (
        "1 of 1 instances failed and max_failures allows 0: blue-1: deploy failed: command "
        "not found: 'releases/1.1.0/serve'"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "blue-1") == [
        "start 1.0.0", "stop 1.0.0", "start 1.0.0", "stop 1.0.0",
    ]


def test_rolling_interrupt_during_deploy(tmp_path: Path) -> None:
    document = pipeline(free_port(), "rolling", instances=2,
                        env={"SERVICE_HANG": "blue-2@1.1.0"})

    finished = run_and_interrupt(tmp_path, document, hanging(tmp_path, "blue-2"),
                                 "the start of blue-2")

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == "interrupted during batch 2 of 2"
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 2 instances"
    )
    assert lifecycle(tmp_path, "blue-1") == [
        "start 1.0.0", "stop 1.0.0", "start 1.1.0", "stop 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert lifecycle(tmp_path, "blue-2") == [
        "start 1.0.0", "stop 1.0.0", "hang 1.1.0", "stop 1.1.0", "start 1.0.0", "stop 1.0.0",
    ]
    assert live_pids(tmp_path) == []


# -- blue-green --------------------------------------------------------------------------


def test_blue_green_failure_on_one_instance(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "blue-green", instances=2,
                        env={"SERVICE_CRASH": "green-2@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (blue-green)"].message == (
        "1 of 2 instances of slot 'green' failed: green-2: deploy failed: process exited "
        "with code 3 before it became healthy; its last output line: service.py: injected crash "
        "of green-2@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (blue-green)"].message == (
        "removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert snapshot(tmp_path) == BLUE_PAIR_ONLY
    assert lifecycle(tmp_path, "green-1") == ["start 1.1.0", "stop 1.1.0"]
    assert lifecycle(tmp_path, "green-2") == ["crash 1.1.0"]
    assert lifecycle(tmp_path, "blue-1") == ["start 1.0.0", "stop 1.0.0"]
    assert live_pids(tmp_path) == []


def test_blue_green_health_never_passes(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "blue-green", env=UNHEALTHY, start_timeout=SHORT_START)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert without_ports(step_lines(result.stdout)["deploy 1.1.0 (blue-green)"].message) == (
        "1 of 1 instances of slot 'green' failed: green-1: deploy failed: "
        "not healthy within 1s500ms: http://127.0.0.1:PORT/healthz answered 503; its last output "
        "line: "
        "service.py: 1.1.0 listening on http://127.0.0.1:PORT"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "green-1") == ["start 1.1.0", "stop 1.1.0"]
    assert live_pids(tmp_path) == []


def test_blue_green_hanging_start_times_out(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "blue-green", env={"SERVICE_HANG": "*@1.1.0"},
                        start_timeout=SHORT_START)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert without_ports(step_lines(result.stdout)["deploy 1.1.0 (blue-green)"].message) == (
        "1 of 1 instances of slot 'green' failed: green-1: deploy failed: "
        "not healthy within 1s500ms: http://127.0.0.1:PORT/healthz failed: [Errno 111] "
        "Connection refused"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "green-1") == ["hang 1.1.0", "stop 1.1.0"]
    assert live_pids(tmp_path) == []


def test_blue_green_command_not_found(shipline_cli: RunCli, tmp_path: Path) -> None:
    command = install_release(tmp_path, "1.0.0")
    document = pipeline(free_port(), "blue-green", command=command)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (blue-green)"].message == (
        "1 of 1 instances of slot 'green' failed: green-1: deploy failed: command not found: "
        "'releases/1.1.0/serve'"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "green-1") == []


def test_blue_green_interrupt_during_scale_down(tmp_path: Path) -> None:
    port = free_port()
    document = pipeline(port, "blue-green", instances=2, scale_down_delay=PAUSE,
                        env={"SERVICE_SLOW_STOP": "green-*@1.1.0"},
                        post_promotion=[{"command": "touch switched"}])

    with watching_router(port) as seen:
        finished = run_and_interrupt(tmp_path, document, (tmp_path / "switched").exists,
                                     "the post-promotion check", settle=PAUSE_SETTLE)

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (blue-green)"].message == (
        "interrupted during scale_down_delay, before removing slot 'blue'"
    )
    assert lines["rollback: deploy 1.1.0 (blue-green)"].message == (
        "traffic back on slot 'blue'; removed 1.1.0 from 2 instances of slot 'green'"
    )
    # Green served everything before the signal. After the switch back, blue served
    # every request while green took half a second to stop, and then the run ended.
    assert served_before(seen, finished.signalled_at) == {"green 200 1.1.0"}
    after = served_after_green(seen, finished.signalled_at)
    assert after.count("blue 200 1.0.0") >= 5
    assert set(after) <= AFTER_ROLLBACK
    # The rollback stopped green. Blue kept its first processes until the run ended.
    assert sorted(stop_order(tmp_path)[:2]) == ["green-1 1.1.0", "green-2 1.1.0"]
    assert sorted(stop_order(tmp_path)[2:]) == ["blue-1 1.0.0", "blue-2 1.0.0"]
    assert lifecycle(tmp_path, "blue-1") == ["start 1.0.0", "stop 1.0.0"]
    assert live_pids(tmp_path) == []


def test_blue_green_interrupt_during_deploy(tmp_path: Path) -> None:
    document = pipeline(free_port(), "blue-green", instances=2,
                        env={"SERVICE_HANG": "green-2@1.1.0"})

    finished = run_and_interrupt(tmp_path, document, hanging(tmp_path, "green-2"),
                                 "the start of green-2")

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (blue-green)"].message == (
        "interrupted while deploying to slot 'green'"
    )
    assert lines["rollback: deploy 1.1.0 (blue-green)"].message == (
        "removed 1.1.0 from 2 instances of slot 'green'"
    )
    # A green instance may be cut short before it logs its start. Every one that logged
    # it was stopped by the rollback, and blue only at the end of the run.
    stops = stop_order(tmp_path)
    assert sorted(stops[-2:]) == ["blue-1 1.0.0", "blue-2 1.0.0"]
    assert [stop for stop in stops[:-2] if not stop.startswith("green-")] == []
    assert unstopped(tmp_path) == []
    assert live_pids(tmp_path) == []


def test_blue_green_post_promotion_failure(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "blue-green", instances=2, scale_down_delay="5s",
                        post_promotion=[{"command": "false"}])

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["rollback: deploy 1.1.0 (blue-green)"].message == (
        "traffic back on slot 'blue'; removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert snapshot(tmp_path) == BLUE_PAIR_ONLY
    assert lifecycle(tmp_path, "green-1") == ["start 1.1.0", "stop 1.1.0"]


# -- canary ------------------------------------------------------------------------------


def probe(condition: str) -> dict[str, Any]:
    """An inline analysis: one measurement of 40 requests through the router."""
    return {"provider": "probe", "requests": 40, "count": 1, "success": condition}


def test_canary_failure_on_one_instance(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "canary", instances=2,
                        env={"SERVICE_CRASH": "green-2@1.1.0"},
                        steps=[{"set_weight": 50}])

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == (
        "1 of 2 instances of slot 'green' failed: green-2: deploy failed: process exited "
        "with code 3 before it became healthy; its last output line: service.py: injected crash "
        "of green-2@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "weight of slot 'green' back to 0; removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert snapshot(tmp_path) == BLUE_PAIR_ONLY
    assert lifecycle(tmp_path, "green-1") == ["start 1.1.0", "stop 1.1.0"]
    assert live_pids(tmp_path) == []


def test_canary_analysis_fails_at_last_weight(shipline_cli: RunCli, tmp_path: Path) -> None:
    # 1.1.0 fails one request in five: enough for the lenient first analysis, not for
    # the strict last one.
    document = pipeline(
        free_port(), "canary", env={"DEMO_BEHAVIOUR": json.dumps({"1.1.0": {"error_rate": 0.2}})},
        steps=[{"set_weight": 25}, {"analysis": probe("success_rate >= 0.5")},
               {"set_weight": 50}, {"analysis": probe("success_rate >= 0.99")}],
    )

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == (
        "analysis 'inline probe' failed: 1 measurement failed, more than failure_limit 0; "
        "last: success condition 'success_rate >= 0.99' is false (success_rate=0.8)"
    )
    assert "analysis 'inline probe': successful: 1 measurement taken: 1 successful" in (
        details_after(result.stdout, "deploy 1.1.0 (canary)")
    )
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "weight of slot 'green' back to 0; removed 1.1.0 from 1 instance of slot 'green'"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "green-1") == ["start 1.1.0", "stop 1.1.0"]


def test_canary_interrupt_during_pause(tmp_path: Path) -> None:
    port = free_port()
    document = pipeline(port, "canary", env={"SERVICE_SLOW_STOP": "green-*@1.1.0"},
                        steps=[{"set_weight": 50}, {"pause": PAUSE}])

    with watching_router(port) as seen:
        finished = run_and_interrupt(tmp_path, document, router_serves(port, "green"),
                                     "a response from the canary", settle=PAUSE_SETTLE)

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == "interrupted during the pause of step 2"
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "weight of slot 'green' back to 0; removed 1.1.0 from 1 instance of slot 'green'"
    )
    # Both versions served during the pause. After the weight went back to 0, blue
    # served every request while green took half a second to stop.
    assert served_before(seen, finished.signalled_at) == {"blue 200 1.0.0", "green 200 1.1.0"}
    after = served_after_green(seen, finished.signalled_at)
    assert after.count("blue 200 1.0.0") >= 5
    assert set(after) <= AFTER_ROLLBACK
    assert stop_order(tmp_path) == ["green-1 1.1.0", "blue-1 1.0.0"]
    assert lifecycle(tmp_path, "blue-1") == ["start 1.0.0", "stop 1.0.0"]
    assert live_pids(tmp_path) == []


def test_canary_health_never_passes(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "canary", env=UNHEALTHY, start_timeout=SHORT_START,
                        steps=[{"set_weight": 50}])

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert without_ports(step_lines(result.stdout)["deploy 1.1.0 (canary)"].message) == (
        "1 of 1 instances of slot 'green' failed: green-1: deploy failed: "
        "not healthy within 1s500ms: http://127.0.0.1:PORT/healthz answered 503; its last output "
        "line: "
        "service.py: 1.1.0 listening on http://127.0.0.1:PORT"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "green-1") == ["start 1.1.0", "stop 1.1.0"]


def test_canary_hanging_start_times_out(shipline_cli: RunCli, tmp_path: Path) -> None:
    document = pipeline(free_port(), "canary", env={"SERVICE_HANG": "*@1.1.0"},
                        start_timeout=SHORT_START, steps=[{"set_weight": 50}])

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert without_ports(step_lines(result.stdout)["deploy 1.1.0 (canary)"].message) == (
        "1 of 1 instances of slot 'green' failed: green-1: deploy failed: "
        "not healthy within 1s500ms: http://127.0.0.1:PORT/healthz failed: [Errno 111] "
        "Connection refused"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "green-1") == ["hang 1.1.0", "stop 1.1.0"]
    assert live_pids(tmp_path) == []


def test_canary_command_not_found(shipline_cli: RunCli, tmp_path: Path) -> None:
    command = install_release(tmp_path, "1.0.0")
    document = pipeline(free_port(), "canary", command=command, steps=[{"set_weight": 50}])

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (canary)"].message == (
        "1 of 1 instances of slot 'green' failed: green-1: deploy failed: command not found: "
        "'releases/1.1.0/serve'"
    )
    assert snapshot(tmp_path) == BLUE_ONLY
    assert lifecycle(tmp_path, "green-1") == []


def test_canary_interrupt_during_deploy(tmp_path: Path) -> None:
    document = pipeline(free_port(), "canary", instances=2,
                        env={"SERVICE_HANG": "green-2@1.1.0"}, steps=[{"set_weight": 50}])

    finished = run_and_interrupt(tmp_path, document, hanging(tmp_path, "green-2"),
                                 "the start of green-2")

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == (
        "interrupted while deploying to slot 'green'"
    )
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "weight of slot 'green' back to 0; removed 1.1.0 from 2 instances of slot 'green'"
    )
    # A green instance may be cut short before it logs its start. Every one that logged
    # it was stopped by the rollback, and blue only at the end of the run.
    stops = stop_order(tmp_path)
    assert sorted(stops[-2:]) == ["blue-1 1.0.0", "blue-2 1.0.0"]
    assert [stop for stop in stops[:-2] if not stop.startswith("green-")] == []
    assert unstopped(tmp_path) == []
    assert live_pids(tmp_path) == []
