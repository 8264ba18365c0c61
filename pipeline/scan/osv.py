"""OSV-Scanner JSON reports (``osv-scanner --format json``).

One finding per entry of ``results[].packages[].groups[]``: a group is one
vulnerability with its aliases in one package, so a GHSA and a PYSEC record of the
same bug count once. The first of the group's ``ids`` is the finding's id and the
other ids and aliases are its aliases.

Severity: the group's ``max_severity`` (a numeric string, osv-scanner 1.7 and later)
banded like a CVSS score, with ``""`` as unknown. Without that field, the highest base
score computed from the ``severity[]`` CVSS vectors of the group's records; unknown if
there are none. The words of ``database_specific.severity`` are not used, because
they are not a score and only some databases write them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pipeline.scan.cvssscore import base_score
from pipeline.scan.finding import Finding, Severity, band_score
from pipeline.scan.reader import Fields

logger = logging.getLogger("shipline")

FORMAT = "osv-scanner"


def parse(data: Any, fields: Fields) -> list[Finding]:
    """Return the findings of a parsed OSV-Scanner report; raise ReportError when
    malformed."""
    document = fields.mapping(data, "$")
    findings = []
    for result_where, result in fields.objects(document, "results", ""):
        source = fields.mapping(result.get("source"), f"{result_where}.source")
        location = fields.text(source, "path", f"{result_where}.source")
        for package_where, package in fields.objects(result, "packages", result_where):
            findings.extend(_package_findings(package, package_where, location, fields))
    return findings


def _package_findings(
    package: Mapping[str, Any], where: str, location: str, fields: Fields
) -> list[Finding]:
    info_where = f"{where}.package"
    info = fields.mapping(package.get("package"), info_where)
    name = fields.text(info, "name", info_where)
    version = fields.text(info, "version", info_where) or fields.text(info, "commit", info_where)
    records = {
        fields.text(record, "id", record_where): (record_where, record)
        for record_where, record in fields.objects(package, "vulnerabilities", where)
    }

    findings = []
    for group_where, group in fields.objects(package, "groups", where):
        ids = fields.strings(group, "ids", group_where)
        if not ids:
            raise fields.error(group_where, "ids is missing or empty")
        members = [records[i] for i in ids if i in records]
        severity, raw, score = _severity(group, group_where, members, fields)
        fixed = _fixed_versions(members, name, fields)
        aliases = [a for a in [*ids[1:], *fields.strings(group, "aliases", group_where)]
                   if a != ids[0]]
        findings.append(Finding(
            id=ids[0], severity=severity, report=fields.file, raw_severity=raw,
            package=name, version=version, location=location,
            fix_available=bool(fixed), fixed_in=", ".join(fixed),
            title=_summary(members, fields), aliases=tuple(dict.fromkeys(aliases)),
            score=score,
        ))
    return findings


def _severity(
    group: Mapping[str, Any], where: str,
    members: list[tuple[str, Mapping[str, Any]]], fields: Fields,
) -> tuple[Severity, str, float | None]:
    """Return the severity, the text it came from and the score of one group."""
    if "max_severity" in group:
        score = fields.number(group, "max_severity", where)
        if score is None:
            return Severity.UNKNOWN, "", None
        return band_score(score), f"max_severity {score:g}", score

    scores = []
    for record_where, record in members:
        for entry_where, entry in fields.objects(record, "severity", record_where):
            vector = fields.text(entry, "score", entry_where)
            if not vector:
                continue
            score = base_score(vector)
            if score is None:
                logger.warning("%s: %s: CVSS vector %r is not valid; it was left out of the "
                               "severity", fields.file, entry_where, vector)
                continue
            scores.append(score)
    if not scores:
        return Severity.UNKNOWN, "", None
    highest = max(scores)
    return band_score(highest), f"CVSS {highest:g}", highest


def _fixed_versions(
    members: list[tuple[str, Mapping[str, Any]]], package: str, fields: Fields
) -> list[str]:
    """Return the ``fixed`` events of the records' ranges for ``package``, in order."""
    fixed: list[str] = []
    for record_where, record in members:
        for affected_where, affected in fields.objects(record, "affected", record_where):
            affected_package = fields.mapping(affected.get("package"), affected_where)
            if package and affected_package.get("name") not in (None, package):
                continue
            for range_where, version_range in fields.objects(affected, "ranges",
                                                             affected_where):
                for event_where, event in fields.objects(version_range, "events",
                                                         range_where):
                    value = fields.text(event, "fixed", event_where)
                    if value and value not in fixed:
                        fixed.append(value)
    return fixed


def _summary(members: list[tuple[str, Mapping[str, Any]]], fields: Fields) -> str:
    for record_where, record in members:
        summary = fields.text(record, "summary", record_where)
        if summary:
            return summary
    return ""
