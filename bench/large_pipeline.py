"""Measure load + validate + compile of a generated pipeline with many stages.

Goal: under 1 s for 2,000 stages. Run from the repository root:

    .venv/bin/python bench/large_pipeline.py [--stages 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


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
            f"  - name: stage-{index}{needs}\n"
            "    steps:\n"
            "      - name: check ${REGION}\n"
            "        gate: {uses: command, command: \"true\", timeout: 5s}\n"
            "      - gate: {uses: http, url: \"http://127.0.0.1:8080/healthz\"}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", type=int, default=2000, help="stages to generate")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    args = parser.parse_args()

    from pipeline.cli import common_options  # noqa: F401  (imports the whole CLI once)
    from pipeline.config import Config
    from pipeline.planning import load_plan
    from pipeline.plugins import PluginRegistry

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shipline.yml"
        path.write_text(generate(args.stages), encoding="utf-8")
        size = path.stat().st_size
        samples = []
        for _ in range(args.runs):
            registry = PluginRegistry()
            registry.load_builtins()
            config = Config(options=argparse.Namespace(), registry=registry)
            started = time.perf_counter()
            loaded = load_plan(path, config, environ={})
            samples.append(time.perf_counter() - started)
        assert len(loaded.plan.stages) == args.stages

    print(f"stages: {args.stages}, python {sys.version.split()[0]}, file {size} bytes")
    print(f"load + validate + compile: median {statistics.median(samples) * 1000:.0f} ms, "
          f"min {min(samples) * 1000:.0f} ms over {args.runs} runs (goal: under 1000 ms)")


if __name__ == "__main__":
    main()
