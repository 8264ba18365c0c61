"""An Ansible callback that records when the playbook's first play started and when the
playbook ended, as Unix times in seconds. It writes them to the JSON file named by the
environment variable SHIPLINE_BENCH_TIMES, which bench/rolling.py reads to time the
rolling update without Ansible's own start-up.

With ``serial`` every batch starts the play again, so only the first start counts.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

# ansible-core is installed only in bench/.venv-ansible, not in the project's venv.
from ansible.plugins.callback import CallbackBase  # type: ignore[import-not-found]


class CallbackModule(CallbackBase):  # type: ignore[misc]
    """Records the first play start and the final statistics event."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.play_started: float | None = None

    def v2_playbook_on_play_start(self, play: Any) -> None:
        if self.play_started is None:
            self.play_started = time.time()

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = os.environ.get("SHIPLINE_BENCH_TIMES")
        if not path:
            return
        times = {"play_started": self.play_started, "finished": time.time()}
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(times, stream)
