"""Writing findings as a SARIF 2.1.0 log that GitHub code scanning and GitLab accept.

One run, with ``shipline`` as the tool. Each distinct finding id becomes a rule
carrying the numeric ``security-severity`` property that GitHub uses to show
critical/high/medium/low, and each finding becomes a result that points at its rule
by ``ruleId`` and ``ruleIndex``.

Every result has one location with ``physicalLocation.artifactLocation.uri`` and
``region.startLine``, because GitHub's upload checks require a start line (rule GH1003
of Microsoft's SARIF multitool). A finding without a line, such as a package in an
image, gets line 1, as Trivy's own SARIF output does. A finding without a location
points at the report it came from. ``partialFingerprints`` contains a hash of the finding's id,
package, version and location, so that alerts stay the same across runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.scan.finding import BAND_FLOOR_SCORES, Finding, Severity, band_score

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"

#: The key of ``partialFingerprints``; the version changes if the hashed fields change.
FINGERPRINT_KEY = "shiplineFinding/v1"

#: The most results written. GitHub code scanning rejects a run with more than 25,000
#: results (its documented "Results per run" limit), so the most severe are kept.
MAX_RESULTS = 25_000

#: The run property that counts the results left out above :data:`MAX_RESULTS`.
LEFT_OUT_PROPERTY = "shipline-results-left-out"

#: SARIF result level per severity. ``unknown`` is a warning: it may be serious.
LEVELS = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.UNKNOWN: "warning",
}


@dataclass(frozen=True)
class ScanResult:
    """The findings over the threshold of one scan step, with the step that found them."""

    step_id: str
    step_name: str
    findings: Sequence[Finding]


def render_sarif(
    results: Sequence[ScanResult], *, version: str,
    mask: Callable[[str], str] = lambda text: text, max_results: int = MAX_RESULTS,
) -> dict[str, Any]:
    """Return the SARIF log of ``results`` as JSON-compatible data.

    ``version`` is shipline's version. ``mask`` hides secrets in every text. Past
    ``max_results`` findings, only the most severe are written, and the run's
    :data:`LEFT_OUT_PROPERTY` property counts the others. No ``automationDetails`` is
    written: GitHub's upload sets the category.
    """
    pairs = [(finding, scan) for scan in results for finding in scan.findings]
    left_out = max(len(pairs) - max_results, 0)
    if left_out:
        pairs = sorted(pairs, key=lambda pair: -pair[0].severity)[:max_results]

    rule_index: dict[str, int] = {}
    rules: list[dict[str, Any]] = []
    sarif_results = []
    for finding, scan in pairs:
        index = rule_index.get(finding.id)
        if index is None:
            index = rule_index[finding.id] = len(rules)
            rules.append(_rule(finding, mask))
        else:
            _raise_rule_severity(rules[index], finding)
        sarif_results.append(_result(finding, index, scan, mask))

    run: dict[str, Any] = {
        "tool": {"driver": {"name": "shipline", "version": version, "rules": rules}},
        "columnKind": "unicodeCodePoints",
        "results": sarif_results,
    }
    if left_out:
        run["properties"] = {LEFT_OUT_PROPERTY: left_out}
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def dumps(log: dict[str, Any]) -> bytes:
    """Serialize a log from :func:`render_sarif` as UTF-8 JSON."""
    return (json.dumps(log, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_sarif(path: Path, log: dict[str, Any]) -> None:
    """Write ``log`` to ``path`` through a temporary file, so a reader sees either the old
    file or the whole new one. Creates missing folders; the file gets mode 0644 because
    CI jobs upload it. Raises OSError and leaves no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(dumps(log))
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def security_severity(finding: Finding) -> float:
    """Return the score to publish: the finding's own score when it falls in the band of
    its severity, else the lowest score of that band (0.0 for unknown)."""
    if finding.score is not None and band_score(finding.score) is finding.severity:
        return finding.score
    return BAND_FLOOR_SCORES.get(finding.severity, 0.0)


def _rule(finding: Finding, mask: Callable[[str], str]) -> dict[str, Any]:
    text = mask(finding.title or finding.id)
    return {
        "id": mask(finding.id),
        "shortDescription": {"text": text[:1000]},
        "defaultConfiguration": {"level": LEVELS[finding.severity]},
        "properties": {
            "security-severity": f"{security_severity(finding):.1f}",
            "tags": ["security", "vulnerability"],
        },
    }


def _raise_rule_severity(rule: dict[str, Any], finding: Finding) -> None:
    """Keep a rule at the highest severity of its findings: two scanners may disagree."""
    current = float(rule["properties"]["security-severity"])
    if security_severity(finding) > current:
        rule["properties"]["security-severity"] = f"{security_severity(finding):.1f}"
        rule["defaultConfiguration"]["level"] = LEVELS[finding.severity]


def _result(
    finding: Finding, index: int, scan: ScanResult, mask: Callable[[str], str]
) -> dict[str, Any]:
    uri = finding.location or finding.report
    return {
        "ruleId": mask(finding.id),
        "ruleIndex": index,
        "level": LEVELS[finding.severity],
        "message": {"text": mask(_message(finding, scan))},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": _uri(mask(uri))},
                "region": {"startLine": finding.line or 1},
            },
        }],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(finding)},
        "properties": {
            "severity": finding.severity.label,
            "scanner-severity": mask(finding.raw_severity),
            "package": mask(finding.package),
            "version": mask(finding.version),
            "fixed-in": mask(finding.fixed_in),
            "report": mask(finding.report),
            "step": mask(scan.step_id),
        },
    }


def _message(finding: Finding, scan: ScanResult) -> str:
    text = finding.describe()
    if finding.title:
        text += f": {finding.title}"
    return f"{text} (reported in {finding.report}, step '{scan.step_name}')"


#: A URI that starts with a scheme and an authority, such as ``file:///src/app.py``.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

#: Characters kept as they are in a path; the rest is percent-encoded.
_PATH_SAFE = "/-._~!$&'()*+,;=@"

_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


def _uri(location: str) -> str:
    """Return ``location`` as a URI reference.

    A location that starts with a scheme and ``//`` (SARIF input may hold
    ``file:///...``) keeps its scheme. Elsewhere spaces, colons and other characters
    outside a path are percent-encoded, so that an image name such as ``alpine:3.19``
    is not read as a scheme. Existing ``%XX`` escapes are kept, so a URI read from a
    SARIF report is not encoded twice.
    """
    scheme = _SCHEME.match(location)
    if scheme is None:
        return _quote_path(location, _PATH_SAFE)
    return scheme.group(0) + _quote_path(location[scheme.end():], _PATH_SAFE + ":")


def _quote_path(text: str, safe: str) -> str:
    parts = _ESCAPE.split(text)
    return "".join(part if index % 2 else quote(part, safe=safe)
                   for index, part in enumerate(parts))


def _fingerprint(finding: Finding) -> str:
    key = "\0".join(str(part) for part in finding.key)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
