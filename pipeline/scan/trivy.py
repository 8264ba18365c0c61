"""Trivy JSON reports (``trivy image --format json`` and the other ``trivy`` scans).

One finding per entry of ``Results[].Vulnerabilities[]``, with ``Severity`` as Trivy
wrote it: Trivy already chose among vendors (the distribution's rating first), so the
``VendorSeverity`` and ``CVSS`` opinions are not consulted. The location is the
entry's ``PkgPath`` when present (one npm package can be installed at several paths),
else the result's ``Target``. ``Secrets`` and ``Misconfigurations`` are not
vulnerabilities and are not read. Schema 2 is an object with ``Results``; older Trivy
wrote a bare list of results, sometimes with ``"Vulnerabilities": null``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.scan.finding import Finding, severity_from_word
from pipeline.scan.reader import Fields

FORMAT = "trivy"


def parse(data: Any, fields: Fields) -> list[Finding]:
    """Return the findings of a parsed Trivy report; raise ReportError when malformed."""
    if isinstance(data, list):
        results = fields.objects({"Results": data}, "Results", "")
    else:
        results = fields.objects(fields.mapping(data, "$"), "Results", "")

    findings = []
    for where, result in results:
        target = fields.text(result, "Target", where)
        for entry_where, entry in fields.objects(result, "Vulnerabilities", where):
            findings.append(_finding(entry, entry_where, target, fields))
    return findings


def _finding(entry: Mapping[str, Any], where: str, target: str, fields: Fields) -> Finding:
    vulnerability_id = fields.text(entry, "VulnerabilityID", where)
    if not vulnerability_id:
        raise fields.error(where, "VulnerabilityID is missing")

    raw = fields.text(entry, "Severity", where)
    fixed = fields.text(entry, "FixedVersion", where)
    return Finding(
        id=vulnerability_id,
        severity=severity_from_word(raw),
        report=fields.file,
        raw_severity=raw,
        package=fields.text(entry, "PkgName", where),
        version=fields.text(entry, "InstalledVersion", where),
        location=fields.text(entry, "PkgPath", where) or target,
        fix_available=bool(fixed) or fields.text(entry, "Status", where) == "fixed",
        fixed_in=fixed,
        title=fields.text(entry, "Title", where),
    )
