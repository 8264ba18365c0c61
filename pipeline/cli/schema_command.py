"""``shipline schema``: print the pipeline JSON Schema, plugin fragments included."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.config import Config
from pipeline.exitcodes import ExitCode
from pipeline.planning import full_schema


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schema", parents=parents, help="print the pipeline JSON Schema",
        description="Print the JSON Schema (draft 2020-12) of pipeline files, including the "
        "step types of every loaded plugin. Point your editor at it for completion.",
    )
    return parser


def main(config: Config) -> ExitCode:
    schema, _ = full_schema(config)
    print(json.dumps(schema, indent=2, sort_keys=False), file=config.stdout)
    return ExitCode.OK
