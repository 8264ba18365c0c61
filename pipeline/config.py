"""The state of one shipline invocation: options, plugins, clock and output."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline.clock import Clock, SystemClock
from pipeline.masking import Masker

if TYPE_CHECKING:
    import pluggy

    from pipeline.plugins import PluginRegistry


@dataclass
class Config:
    """Everything a plugin may need that is not part of the plan."""

    options: argparse.Namespace
    registry: PluginRegistry
    invocation_dir: Path = field(default_factory=Path.cwd)
    clock: Clock = field(default_factory=SystemClock)
    masker: Masker = field(default_factory=Masker)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def pluginmanager(self) -> pluggy.PluginManager:
        return self.registry.pluginmanager

    @property
    def hook(self) -> Any:
        """The hook relay: ``config.hook.shipline_<name>(...)``."""
        return self.registry.pluginmanager.hook

    def __repr__(self) -> str:
        return f"<Config command={self.option('command')!r} in {str(self.invocation_dir)!r}>"

    def option(self, name: str, default: Any = None) -> Any:
        """Return a parsed command-line option, or ``default`` if no parser defined it."""
        return getattr(self.options, name, default)
