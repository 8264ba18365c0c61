"""Measure a cold ``shipline validate`` of a small file against a bare interpreter.

Goal: the difference of the medians stays under 0.15 s, which keeps heavy imports
(cryptography, requests) out of start-up. Run from the repository root:

    .venv/bin/python bench/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def median_seconds(argv: list[str], runs: int, cwd: Path) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs per command (default 30)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        (directory / "shipline.yml").write_text(SMALL_PIPELINE, encoding="utf-8")
        bare = median_seconds([sys.executable, "-c", "pass"], args.runs, directory)
        validate = median_seconds(
            [sys.executable, "-m", "pipeline", "validate", "-q"], args.runs, directory
        )

    print(f"python -c pass:     {bare * 1000:7.1f} ms (median of {args.runs})")
    print(f"shipline validate:  {validate * 1000:7.1f} ms (median of {args.runs})")
    print(f"difference:         {(validate - bare) * 1000:7.1f} ms (goal: under 150 ms)")


if __name__ == "__main__":
    main()
