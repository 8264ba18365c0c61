"""``shipline validate [FILE]``: check a pipeline file without running anything."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline import policy
from pipeline.config import Config
from pipeline.exitcodes import ExitCode
from pipeline.planning import load_plan, resolve_pipeline_path
from pipeline.policy import add_policy_argument


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate", parents=parents, help="check a pipeline file and report every problem",
        description="Load, validate and compile a pipeline file; print every problem with "
        "its file, line and column. Exit 0 when valid, 2 when not.",
    )
    parser.add_argument("file", nargs="?", help="pipeline file (default: shipline.yml)")
    add_policy_argument(parser)
    return parser


def main(config: Config) -> ExitCode:
    path = resolve_pipeline_path(config.options.file, config.invocation_dir)
    loaded = load_plan(path, config)
    policy.enforce(loaded.plan, config.option("policy", []), ExitCode.INVALID)
    if not config.options.quiet:
        plan = loaded.plan
        print(f"{path}: valid pipeline '{plan.name}' with {len(plan.stages)} stage(s)",
              file=config.stdout)
    return ExitCode.OK
