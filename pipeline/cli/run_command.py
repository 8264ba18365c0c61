"""``shipline run [FILE]``: run the pipeline and exit with a code that reports what happened."""

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
        "run", parents=parents, help="run the pipeline",
        description="Run every stage of the pipeline in order, rolling back failed deploys. "
        "The exit code says what happened (see 'shipline --help').",
    )
    parser.add_argument("file", nargs="?", help="pipeline file (default: shipline.yml)")
    add_policy_argument(parser)
    parser.add_argument("--junitxml", metavar="PATH",
                        help="write a JUnit XML report to PATH")
    return parser


def main(config: Config) -> ExitCode:
    # Imported here, because every subcommand's module is imported at start-up.
    from pipeline import protect
    from pipeline.runner import Runner

    path = resolve_pipeline_path(config.options.file, config.invocation_dir)
    loaded = load_plan(path, config)
    policy.enforce(loaded.plan, config.option("policy", []), ExitCode.BLOCKED)
    # Before the runner starts, so that a denied run changes nothing.
    protect.enforce(loaded.plan)
    result = Runner(loaded.plan, config).run()
    return result.exit_code
