"""Write deployments and journal entries without end, for the kill-during-write test.

Usage: ``python write_loop.py DB_PATH``. Each round starts a deployment, appends three
journal entries, completes two of them and finishes the deployment, and prints the
round number once the round is committed. The test kills the process with SIGKILL.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from pipeline.clock import SystemClock
from pipeline.state import DeploymentOutcome
from pipeline.state.sqlite import SqliteStore


def main(path: str) -> None:
    with SqliteStore(Path(path), SystemClock()) as store:
        for round_number in itertools.count(1):
            deployment = store.start_deployment(
                pipeline="shop", environment="production", version=f"1.{round_number}",
                previous_version=f"1.{round_number - 1}", strategy="rolling",
            )
            for index in range(3):
                entry = store.append_journal(
                    deployment.id, stage="production", step="deploy", operation="deploy",
                    instances=[f"web-{index}"] * 20, version=deployment.version,
                    details={"padding": "x" * 2000},
                )
                if index < 2:
                    store.complete_journal(deployment.id, entry.seq)
            store.finish_deployment(deployment.id, DeploymentOutcome.SUCCEEDED)
            print(round_number, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
