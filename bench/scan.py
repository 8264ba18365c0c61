"""Measure reading a large scanner report: wall time and peak memory of one scan step.

Generates a Trivy JSON report (or Grype, with --format grype) of about --size MB. Then
each run does the scan step's work in a fresh child process: read the file, parse the
JSON, build the findings and apply a ``fail_on: high`` policy. The child reports
its wall time, its CPU time (less disturbed by other work on a shared machine), and
its peak resident set size (``ru_maxrss``), and the peak of a child
that only imports the same modules, so the table can show what the report itself
costs. --with-collector keeps Python's garbage collector running during the parse,
which read_report() pauses. Goal: a 50 MB report in under 10 s and under 1 GiB of peak
RSS. Run from the repository root:

    .venv/bin/python bench/scan.py [--size 50] [--runs 3] [--format trivy|grype]
                                   [--with-collector]

Exits with status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

GOAL_SECONDS = 10.0
GOAL_RSS_MIB = 1024.0

DESCRIPTION = (
    "A crafted request can make the parser read past the end of its buffer, which "
    "leaks memory contents or stops the process. Versions before the fixed release "
    "are affected when untrusted input reaches the parser. "
)
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


def trivy_entry(index: int) -> dict[str, Any]:
    return {
        "VulnerabilityID": f"CVE-2024-{index:06d}",
        "PkgName": f"package-{index % 5000}",
        "PkgPath": f"app/node_modules/package-{index % 5000}/package.json",
        "InstalledVersion": f"1.{index % 97}.{index % 13}",
        "FixedVersion": f"1.{index % 97}.{index % 13 + 1}" if index % 3 else "",
        "Status": "fixed" if index % 3 else "affected",
        "Severity": SEVERITIES[index % len(SEVERITIES)],
        "Title": f"package-{index % 5000}: out-of-bounds read in the parser",
        "Description": DESCRIPTION * 2,
        "References": [f"https://example.org/advisories/{index}/{n}" for n in range(4)],
        "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
                         "V3Score": 7.5}},
    }


def grype_entry(index: int) -> dict[str, Any]:
    return {
        "vulnerability": {
            "id": f"CVE-2024-{index:06d}",
            "severity": ("Critical", "High", "Medium", "Low", "Negligible")[index % 5],
            "description": DESCRIPTION * 2,
            "urls": [f"https://example.org/advisories/{index}/{n}" for n in range(4)],
            "fix": {"versions": [f"1.{index % 97}.1"] if index % 3 else [],
                    "state": "fixed" if index % 3 else "not-fixed"},
        },
        "relatedVulnerabilities": [{"id": f"GHSA-{index:04x}-aaaa-bbbb"}],
        "artifact": {"name": f"package-{index % 5000}", "version": f"1.{index % 97}.0",
                     "type": "npm",
                     "locations": [{"path": f"/app/node_modules/package-{index % 5000}"}]},
    }


def generate(stream: TextIO, size_bytes: int, report_format: str) -> int:
    """Write a report of at least ``size_bytes`` to ``stream``; return the entry count."""
    entry = trivy_entry if report_format == "trivy" else grype_entry
    if report_format == "trivy":
        stream.write('{"SchemaVersion": 2, "ArtifactName": "bench", "Results": '
                     '[{"Target": "bench", "Class": "lang-pkgs", "Vulnerabilities": [\n')
        closing = "\n]}]}\n"
    else:
        stream.write('{"descriptor": {"name": "grype"}, "matches": [\n')
        closing = "\n]}\n"

    written = 0
    count = 0
    while written < size_bytes:
        text = ("" if count == 0 else ",\n") + json.dumps(entry(count))
        stream.write(text)
        written += len(text)
        count += 1
    stream.write(closing)
    return count


CHILD = """
import contextlib, json, resource, sys, time, datetime
from pathlib import Path
from pipeline.scan import detect
from pipeline.scan.detect import read_report
from pipeline.scan.policy import ScanPolicy, evaluate
if len(sys.argv) > 2:
    detect._collector_paused = contextlib.nullcontext
if sys.argv[1] != "--imports-only":
    started = time.perf_counter()
    cpu_started = time.process_time()
    _, findings = read_report(Path(sys.argv[1]), "bench.json")
    verdict = evaluate(findings, ScanPolicy.from_options({}), datetime.date(2026, 1, 1))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    count = len(findings)
else:
    seconds, cpu, count = 0.0, 0.0, 0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": rss,
                  "findings": count}))
"""


def run_child(argument: str, with_collector: bool = False) -> dict[str, float]:
    command = [sys.executable, "-c", CHILD, argument]
    if with_collector:
        command.append("--with-collector")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output)  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=50, help="report size in MB (10^6 bytes)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--format", choices=("trivy", "grype"), default="trivy",
                        dest="report_format", help="report format to generate")
    parser.add_argument("--with-collector", action="store_true",
                        help="keep the garbage collector running while the report is parsed, "
                        "to compare with the pause that read_report() makes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.json"
        with path.open("w", encoding="utf-8") as stream:
            entries = generate(stream, int(args.size * 1_000_000), args.report_format)
        size_mb = os.path.getsize(path) / 1_000_000

        baseline = run_child("--imports-only")["peak_rss_mib"]
        samples = [run_child(str(path), args.with_collector) for _ in range(args.runs)]

    seconds = statistics.median(s["seconds"] for s in samples)
    cpu = statistics.median(s["cpu_seconds"] for s in samples)
    rss = statistics.median(s["peak_rss_mib"] for s in samples)
    collector = ", collector running" if args.with_collector else ""
    print(f"{args.report_format} report: {size_mb:.1f} MB, {entries} findings, "
          f"{args.runs} runs{collector}")
    print(f"time:      median {seconds:.2f} s (min {min(s['seconds'] for s in samples):.2f} s,"
          f" max {max(s['seconds'] for s in samples):.2f} s)")
    print(f"CPU time:  median {cpu:.2f} s")
    print(f"peak RSS:  median {rss:.0f} MiB, of which {baseline:.0f} MiB after the imports alone")
    print(f"goal:      under {GOAL_SECONDS:.0f} s and {GOAL_RSS_MIB:.0f} MiB")

    met = seconds < GOAL_SECONDS and rss < GOAL_RSS_MIB
    print("goal met" if met else "goal missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
