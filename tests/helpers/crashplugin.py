"""A plugin whose configure hook raises, for tests of crash reports (``-p helpers.crashplugin``)."""

from __future__ import annotations

from typing import Any

import pipeline


@pipeline.hookimpl
def shipline_configure(config: Any) -> None:
    raise RuntimeError("configure blew up")
