"""Measure Masker.mask on a large log that contains no secret, against a flat regex.

The masker compiles every masked form of every secret into one regular expression,
grouped by first character (see ``pipeline.masking._compile``). This script times
``Masker.mask`` on log text without secrets, which is the common case, and times a
flat alternation of the same forms, longest first, for comparison. There is no goal:
the numbers show what the grouping buys. Run from the repository root:

    .venv/bin/python bench/masking.py [--secrets 50] [--lines 50000] [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from pipeline.masking import Masker, _masked_forms

LINE = "INFO deploying web-1 version 1.4.2 to https://shop.example/healthz ok\n"


def median_seconds(work: object, runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=50)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()

    secrets = [f"tok-{index:04d}-{'z' * (index % 30)}" for index in range(options.secrets)]
    text = LINE * options.lines
    masker = Masker(secrets)
    masker.mask("warm up: compile the pattern outside the timer")

    forms: set[str] = set()
    for secret in secrets:
        forms |= _masked_forms(secret)
    ordered = sorted(forms, key=lambda form: (-len(form), form))
    flat = re.compile("|".join(re.escape(form) for form in ordered))

    grouped_time = median_seconds(lambda: masker.mask(text), options.runs)
    flat_time = median_seconds(lambda: flat.search(text), options.runs)

    print(f"{options.secrets} secrets, {len(forms)} masked forms, "
          f"{len(text) / 1e6:.1f} MB of text without secrets, median of {options.runs} runs")
    print(f"Masker.mask (grouped by first character): {grouped_time * 1000:8.1f} ms")
    print(f"flat alternation, search only:            {flat_time * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
