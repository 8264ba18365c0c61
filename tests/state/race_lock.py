"""Try once to take an environment's lock, for the tests that race processes.

Usage: ``python race_lock.py STATE GO_FILE OWNER``. Opens the store at STATE (a path or
URL), waits until GO_FILE exists so that every racer starts together, tries to
acquire the lock of ``production``, and prints ``won OWNER`` or ``held OWNER``.
The winner keeps the lock (the lease is long) and exits.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipeline.clock import SystemClock
from pipeline.state import LockHeld, open_store
from pipeline.state.url import parse_state_url


def main(state: str, go_file: str, owner: str) -> int:
    location = parse_state_url(state, Path.cwd(), "STATE")
    with open_store(location, SystemClock()) as store:
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while not Path(go_file).exists():
            if time.monotonic() > deadline:
                print("no go file", flush=True)
                return 1
            time.sleep(0.001)
        try:
            store.acquire_lock("production", owner, lease=600)
        except LockHeld:
            print(f"held {owner}", flush=True)
            return 0
        print(f"won {owner}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
