"""Measure validate() alone on a generated pipeline with many stages.

Each run builds the schema from the built-in plugins and loads the file outside the
timer, then times one validate() call. The schema is a new object every run, so each
timed call also compiles the fast check, as a `shipline validate` process does.
Goal: under 500 ms for 2,000 stages. Run from the repository root:

    .venv/bin/python bench/validate_large.py [--stages 2000] [--runs 5] [--jsonschema]

--jsonschema also times jsonschema's Draft202012Validator.is_valid on the same
document, which is what validate() would cost without the fast check.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable


def generate(stages: int) -> str:
    lines = [
        "version: 1",
        "name: large",
        "vars: {REGION: eu-west-1}",
        "environments:",
        "  production:",
        '    target: {type: command, instances: [web-1, web-2], deploy: "deploy {instance}"}',
        "stages:",
    ]
    for index in range(stages):
        needs = f"\n    needs: [stage-{index - 1}]" if index else ""
        lines.append(
            f"  - name: stage-{index}\n"
            f"    environment: production{needs}\n"
            "    timeout: 10m\n"
            "    steps:\n"
            "      - deploy:\n"
            f'          version: "1.{index}"\n'
            "          strategy: canary\n"
            "          steps: [{set_weight: 20}, {pause: 30s}, {set_weight: 100}]\n"
            "      - name: check ${REGION}\n"
            "        gate: {uses: command, command: \"true\", timeout: 5s}\n"
            "      - gate: {uses: http, url: \"http://127.0.0.1:8080/healthz\", retries: 2}"
        )
    return "\n".join(lines) + "\n"


def measure(run: Callable[[], float], runs: int) -> tuple[float, float]:
    """Call ``run`` ``runs`` times and return the median and minimum of its seconds, in ms."""
    samples = [run() for _ in range(runs)]
    return statistics.median(samples) * 1000, min(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", type=int, default=2000, help="stages to generate")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument(
        "--jsonschema", action="store_true", help="also time jsonschema alone on the document"
    )
    args = parser.parse_args()

    from jsonschema import Draft202012Validator

    from pipeline.config import Config
    from pipeline.loader import load_text
    from pipeline.planning import full_schema
    from pipeline.plugins import PluginRegistry
    from pipeline.schema import validate

    registry = PluginRegistry()
    registry.load_builtins()
    config = Config(options=argparse.Namespace(), registry=registry)
    text = generate(args.stages)

    def time_validate() -> float:
        schema, _ = full_schema(config)
        document = load_text(text, "shipline.yml")
        gc.collect()
        started = time.perf_counter()
        validate(document, schema)
        return time.perf_counter() - started

    def time_jsonschema() -> float:
        schema, _ = full_schema(config)
        document = load_text(text, "shipline.yml")
        gc.collect()
        started = time.perf_counter()
        valid = Draft202012Validator(schema).is_valid(document.data)
        elapsed = time.perf_counter() - started
        assert valid
        return elapsed

    print(f"stages: {args.stages}, python {sys.version.split()[0]}, file {len(text)} bytes")
    median, fastest = measure(time_validate, args.runs)
    print(f"validate: median {median:.0f} ms, min {fastest:.0f} ms over {args.runs} runs "
          "(goal: under 500 ms)")
    if args.jsonschema:
        median, fastest = measure(time_jsonschema, args.runs)
        print(f"jsonschema is_valid alone: median {median:.0f} ms, min {fastest:.0f} ms "
              f"over {args.runs} runs")


if __name__ == "__main__":
    main()
