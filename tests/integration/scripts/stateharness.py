"""Helpers of the state tests: pipelines on release directories, and the store they write.

Every instance is a release directory changed by ``release.sh`` (through ``gated.sh``,
which can hold a deploy until the test creates a file). The state store is an SQLite
file or a schema of the test PostgreSQL server, given to ``shipline`` with ``--state``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from integration.scripts.harness import SCRIPTS

from helpers.postgres import PostgresServer, postgres_server  # noqa: F401 (a fixture)
from pipeline.clock import SystemClock
from pipeline.state import Deployment, JournalEntry, Lock, Rollback, StateStore, open_store
from pipeline.state.url import parse_state_url

#: Folder of the release directories, relative to the pipeline file.
ROOT = "servers"

#: The file that lets held deploys go on, relative to the pipeline file.
GATE = "go"

#: Folder of the router's state files, relative to the pipeline file.
ROUTER = "router"

WEB = ["web-1", "web-2", "web-3", "web-4"]
BLUE = ["blue-1", "blue-2"]
GREEN = ["green-1", "green-2"]


def gated(action: str, *arguments: str) -> str:
    return " ".join(["sh", shlex.quote(str(SCRIPTS / "gated.sh")), action, ROOT, *arguments])


def web_target(gated_deploys: str = "", **env: str) -> dict[str, Any]:
    """Return a command target of the four WEB instances. Deploys that match the
    ``gated_deploys`` patterns (``web-3@1.1.0``) wait for the GATE file, and ``env``
    adds variables such as release.sh's ``FAIL_DEPLOY``."""
    return {
        "type": "command",
        "instances": WEB,
        "deploy": gated("deploy", "{instance}", "{version}"),
        "version": gated("version", "{instance}"),
        "health": gated("health", "{instance}"),
        "env": {"GATED": gated_deploys, "GATE": GATE, **env},
        "timeout": "30s",
    }


def router(action: str, *arguments: str) -> str:
    return " ".join(["sh", shlex.quote(str(SCRIPTS / "router.sh")), ROUTER, action, *arguments])


def slot_target(**env: str) -> dict[str, Any]:
    """Return a command target with slots blue (BLUE) and green (GREEN), routed by
    ``router.sh`` whose state is in ROUTER."""
    return {
        "type": "command",
        "slots": {"blue": BLUE, "green": GREEN},
        "deploy": gated("deploy", "{instance}", "{version}"),
        "version": gated("version", "{instance}"),
        "health": gated("health", "{instance}"),
        "remove": gated("remove", "{instance}", "{version}"),
        "active_slot": router("active_slot"),
        "switch": router("switch", "{slot}"),
        "set_weight": router("set_weight", "{slot}", "{weight}"),
        "env": dict(env),
        "timeout": "30s",
    }


def install_slots(folder: Path) -> None:
    """Install 1.0.0 on blue, which serves traffic, and nothing on green."""
    install(folder, BLUE, "1.0.0")
    for instance in GREEN:
        (folder / ROOT / instance).mkdir(parents=True)
    (folder / ROUTER).mkdir()
    (folder / ROUTER / "active").write_text("blue\n")


def router_log(folder: Path) -> list[str]:
    path = folder / ROUTER / "log"
    return path.read_text().splitlines() if path.is_file() else []


def active_slot(folder: Path) -> str:
    return (folder / ROUTER / "active").read_text().strip()


def pipeline(target: dict[str, Any], version: str = "1.1.0", *, lease: str = "60s",
             **deploy: Any) -> dict[str, Any]:
    """Return a pipeline with one stage that deploys ``version`` to ``target``; the
    deploy options default to a rolling deploy of one instance per batch."""
    options = {"version": version, "strategy": "rolling", "health": False, **deploy}
    return {
        "version": 1,
        "name": "shop",
        "state": {"lease": lease},
        "environments": {"production": {"target": target}},
        "stages": [{"name": "release", "environment": "production",
                    "steps": [{"deploy": options}]}],
    }


def install(folder: Path, instances: list[str], version: str) -> None:
    """Create the release directory of each instance with ``version`` live."""
    for instance in instances:
        directory = folder / ROOT / instance
        (directory / "releases" / version).mkdir(parents=True)
        (directory / "releases" / version / "VERSION").write_text(f"{version}\n")
        (directory / "current").symlink_to(f"releases/{version}")


def running(folder: Path, instance: str) -> str | None:
    """Return the live version of ``instance``, or None if it has none."""
    path = folder / ROOT / instance / "current" / "VERSION"
    return path.read_text().strip() if path.is_file() else None


def versions(folder: Path, instances: list[str] = WEB) -> dict[str, str | None]:
    return {instance: running(folder, instance) for instance in instances}


def deploy_history(folder: Path, instance: str) -> list[str]:
    """Return the lines ``release.sh`` appended for ``instance``, oldest first."""
    path = folder / ROOT / instance / "history"
    return path.read_text().splitlines() if path.is_file() else []


class StoreReader:
    """Reads what the runs wrote into the store at ``url``, for assertions."""

    def __init__(self, url: str, base: Path) -> None:
        self._location = parse_state_url(url, base, "--state")

    def _open(self) -> StateStore:
        return open_store(self._location, SystemClock())

    def history(self) -> list[Deployment]:
        with self._open() as store:
            return store.history("production", limit=100)

    def journal(self, deployment_id: str) -> list[JournalEntry]:
        with self._open() as store:
            return store.journal(deployment_id)

    def rollbacks(self) -> list[Rollback]:
        with self._open() as store:
            return store.rollbacks("production", limit=100)

    def lock(self) -> Lock | None:
        with self._open() as store:
            return store.lock_status("production")
