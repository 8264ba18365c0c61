"""Measure load + validate + compile of a generated pipeline with many stages.

Goal: under 1 s for 2,000 stages. Two shapes of stage are measured, because the cost
depends on what a stage contains:

``gates``
    two gate steps (command and http) and a ``needs:`` on the stage before.
``deploy``
    the same, plus an environment, a stage timeout and a canary deploy step with three
    canary steps, so that strategy options are validated and checked too.

Each timed run uses a new plugin registry, so it builds the full schema again, as a
``shipline`` process does. Imports happen before the first run. Run from the
repository root:

    .venv/bin/python bench/large_pipeline.py [--stages 2000] [--runs 5] [--profile]

``--profile`` also prints the slowest functions of one more run of each shape under
cProfile, which slows everything down but keeps the shares. The exit status is 1 when
a shape misses the goal.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

#: Seconds that loading, validating and compiling may take.
GOAL = 1.0

HEADER = [
    "version: 1",
    "name: large",
    "vars: {REGION: eu-west-1}",
    "environments:",
    "  production:",
    '    target: {type: command, instances: [web-1, web-2], deploy: "deploy {instance}"}',
    "stages:",
]

GATES = (
    "      - name: check ${REGION}\n"
    "        gate: {uses: command, command: \"true\", timeout: 5s}\n"
    "      - gate: {uses: http, url: \"http://127.0.0.1:8080/healthz\"}"
)


def gates_stage(index: int) -> str:
    needs = f"\n    needs: [stage-{index - 1}]" if index else ""
    return f"  - name: stage-{index}{needs}\n    steps:\n{GATES}"


def deploy_stage(index: int) -> str:
    needs = f"\n    needs: [stage-{index - 1}]" if index else ""
    return (
        f"  - name: stage-{index}\n"
        f"    environment: production{needs}\n"
        "    timeout: 10m\n"
        "    steps:\n"
        "      - deploy:\n"
        f'          version: "1.{index}"\n'
        "          strategy: canary\n"
        "          steps: [{set_weight: 20}, {pause: 30s}, {set_weight: 100}]\n"
        f"{GATES}"
    )


SHAPES = {"gates": gates_stage, "deploy": deploy_stage}


def generate(stages: int, shape: str) -> str:
    """Return a pipeline file of ``stages`` stages of ``shape`` (a key of SHAPES)."""
    make_stage = SHAPES[shape]
    return "\n".join([*HEADER, *(make_stage(index) for index in range(stages))]) + "\n"


def load_once(path: Path) -> tuple[float, int]:
    """Load, validate and compile ``path`` with a new registry. Return the seconds taken
    and the number of stages in the plan."""
    from pipeline.config import Config
    from pipeline.planning import load_plan
    from pipeline.plugins import PluginRegistry

    registry = PluginRegistry()
    registry.load_builtins()
    config = Config(options=argparse.Namespace(), registry=registry)
    started = time.perf_counter()
    loaded = load_plan(path, config, environ={})
    return time.perf_counter() - started, len(loaded.plan.stages)


def print_profile(path: Path, top: int = 15) -> None:
    profile = cProfile.Profile()
    profile.runcall(load_once, path)
    print(f"  cProfile of one run, the {top} largest cumulative times:")
    stats = pstats.Stats(profile, stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)


def measure(shape: str, stages: int, runs: int, folder: Path, profile: bool) -> bool:
    """Time ``runs`` loads of a generated file of ``shape``, then print the result and
    return whether it meets the goal."""
    path = folder / f"{shape}.yml"
    path.write_text(generate(stages, shape), encoding="utf-8")
    samples = []
    for _ in range(runs):
        elapsed, count = load_once(path)
        assert count == stages, f"the plan has {count} stages, expected {stages}"
        samples.append(elapsed)

    median = statistics.median(samples)
    verdict = "met" if median < GOAL else "NOT met"
    print(f"{shape:>6}: file {path.stat().st_size} bytes, load + validate + compile: median "
          f"{median * 1000:.0f} ms, min {min(samples) * 1000:.0f} ms, max "
          f"{max(samples) * 1000:.0f} ms over {runs} runs (goal: under {GOAL * 1000:.0f} ms: "
          f"{verdict})")
    if profile:
        print_profile(path)
    return median < GOAL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", type=int, default=2000, help="stages to generate")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per shape (default 5)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one run of each shape")
    args = parser.parse_args()

    import pipeline.cli  # noqa: F401  (imports the whole CLI before the first timed run)

    print(f"stages: {args.stages}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as folder:
        met = [measure(shape, args.stages, args.runs, Path(folder), args.profile)
               for shape in SHAPES]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
