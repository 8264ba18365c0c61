"""Measure a cold ``shipline validate`` of a small file against a bare interpreter.

Goal: the difference of the medians stays under 0.15 s, which keeps heavy imports
(cryptography, requests) out of start-up. The two commands alternate, so that a change
in the machine's load during the measurement affects both alike. Each command runs once
untimed first: that fills the bytecode cache, as installing a wheel does. Bytecode goes
to a temporary PYTHONPYCACHEPREFIX, and PYTHONDONTWRITEBYTECODE is removed from the
children's environment, because with it set every run would compile shipline from
source. Run from the repository root:

    .venv/bin/python bench/startup.py [--runs 30] [--importtime]

``--importtime`` also runs ``python -X importtime`` once and prints the slowest imports.
The exit status is 1 when the goal is not met.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Seconds that ``shipline validate`` may take beyond ``python -c pass``.
GOAL = 0.15

SMALL_PIPELINE = """\
version: 1
name: shop
environments:
  production:
    target: {type: command, instances: [web-1, web-2], deploy: "deploy.sh {instance} {version}"}
stages:
  - name: check
    steps:
      - gate: {uses: command, command: "true"}
  - name: production
    environment: production
    steps:
      - deploy: {version: "1.4.2", strategy: rolling, batch: 1}
"""

BARE = [sys.executable, "-c", "pass"]
VALIDATE = [sys.executable, "-m", "pipeline", "validate", "-q"]


def child_env(cache: Path) -> dict[str, str]:
    """Return this process's environment with bytecode cached under ``cache``."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def seconds(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run ``argv`` once and return its wall time; raise CalledProcessError if it fails."""
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(runs: int, cwd: Path, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Return ``runs`` wall times of the bare interpreter and of validate, alternated."""
    seconds(BARE, cwd, env)
    seconds(VALIDATE, cwd, env)

    bare: list[float] = []
    validate: list[float] = []
    for _ in range(runs):
        bare.append(seconds(BARE, cwd, env))
        validate.append(seconds(VALIDATE, cwd, env))
    return bare, validate


def print_importtime(cwd: Path, env: dict[str, str], top: int = 15) -> None:
    """Run validate once with ``-X importtime`` and print the imports with the largest
    cumulative time, indented by nesting depth, and the share of imports in the run."""
    argv = [sys.executable, "-X", "importtime", *VALIDATE[1:]]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    total = time.perf_counter() - started

    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append((int(match.group(2)), len(match.group(3)) // 2, match.group(4)))
    imports = sum(cumulative for cumulative, depth, _ in rows if depth == 0) / 1e6

    print(f"\n-X importtime: imports take {imports * 1000:.0f} ms of a {total * 1000:.0f} ms run "
          "(importtime itself slows imports down)")
    for cumulative, depth, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative / 1000:7.1f} ms  {'  ' * depth}{name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="runs per command (default 30)")
    parser.add_argument("--importtime", action="store_true",
                        help="also print the slowest imports of one validate run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        (directory / "shipline.yml").write_text(SMALL_PIPELINE, encoding="utf-8")
        env = child_env(directory / "pycache")
        bare, validate = measure(args.runs, directory, env)
        if args.importtime:
            print_importtime(directory, env)

    difference = statistics.median(validate) - statistics.median(bare)
    verdict = "met" if difference < GOAL else "NOT met"
    print(f"\npython {sys.version.split()[0]}, {args.runs} runs of each command, alternated")
    print(f"python -c pass:     median {statistics.median(bare) * 1000:7.1f} ms, "
          f"min {min(bare) * 1000:7.1f} ms")
    print(f"shipline validate:  median {statistics.median(validate) * 1000:7.1f} ms, "
          f"min {min(validate) * 1000:7.1f} ms")
    print(f"difference:         median {difference * 1000:7.1f} ms "
          f"(goal: under {GOAL * 1000:.0f} ms: {verdict})")
    return 0 if difference < GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
