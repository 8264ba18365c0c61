"""``shipline plugins [FILE]``: list loaded plugins, where they came from, what they add."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.exitcodes import ExitCode
from pipeline.loader import load_file
from pipeline.planning import collect_fragments


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plugins", parents=parents, help="list loaded plugins and the step types they add",
        description="List every loaded plugin with its origin and location, and the step "
        "types, targets and routers it declares. With FILE, the pipeline's own plugins "
        "('plugins:' and shipline_plugins.py) are loaded too.",
    )
    parser.add_argument("file", nargs="?", help="pipeline file whose plugins to load as well")
    return parser


def main(config: Config) -> ExitCode:
    if config.options.file:
        path = Path(config.options.file)
        document = load_file(path)
        names = document.data.get("plugins")
        if isinstance(names, list):
            config.registry.load_modules([str(n) for n in names],
                                         origin=f"plugins: in {document.display_name}")
        config.registry.load_local_file(path.parent)
        config.registry.check_pending()

    provided: dict[str, list[str]] = {}
    for fragment in collect_fragments(config):
        provided.setdefault(fragment.plugin, []).append(f"{fragment.kind} {fragment.type}")

    out = config.stdout
    for info in config.registry.loaded:
        print(f"{info.name}  ({info.origin})", file=out)
        if info.location:
            print(f"    location: {info.location}", file=out)
        if provided.get(info.name):
            print(f"    provides: {', '.join(sorted(provided[info.name]))}", file=out)
    return ExitCode.OK
