"""Grype JSON reports (``grype -o json``), old (0.7) and current (0.9x) schemas.

One finding per entry of ``matches[]``, with ``vulnerability.severity``: Critical, High,
Medium and Low as named, Negligible as low, Unknown or a missing severity as unknown.
``ignoredMatches`` (what Grype's own ignore rules removed) never count. The location is
the first of ``artifact.locations``, and the ids of ``relatedVulnerabilities`` are
aliases, so an ``ignore`` entry for the CVE also covers a distribution's advisory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.scan.finding import Finding, severity_from_word
from pipeline.scan.reader import Fields

FORMAT = "grype"


def parse(data: Any, fields: Fields) -> list[Finding]:
    """Return the findings of a parsed Grype report; raise ReportError when malformed."""
    document = fields.mapping(data, "$")
    return [_finding(match, where, fields)
            for where, match in fields.objects(document, "matches", "")]


def _finding(match: Mapping[str, Any], where: str, fields: Fields) -> Finding:
    vulnerability = fields.mapping(match.get("vulnerability"), f"{where}.vulnerability")
    vulnerability_where = f"{where}.vulnerability"
    vulnerability_id = fields.text(vulnerability, "id", vulnerability_where)
    if not vulnerability_id:
        raise fields.error(vulnerability_where, "id is missing")

    artifact_where = f"{where}.artifact"
    artifact = fields.mapping(match.get("artifact"), artifact_where)
    fix_where = f"{vulnerability_where}.fix"
    fix = fields.mapping(vulnerability.get("fix"), fix_where)
    fixed_versions = fields.strings(fix, "versions", fix_where)
    related = [fields.text(item, "id", item_where) for item_where, item
               in fields.objects(match, "relatedVulnerabilities", where)]

    raw = fields.text(vulnerability, "severity", vulnerability_where)
    return Finding(
        id=vulnerability_id,
        severity=severity_from_word(raw),
        report=fields.file,
        raw_severity=raw,
        package=fields.text(artifact, "name", artifact_where),
        version=fields.text(artifact, "version", artifact_where),
        location=_first_location(artifact, artifact_where, fields),
        fix_available=bool(fixed_versions) or fields.text(fix, "state", fix_where) == "fixed",
        fixed_in=", ".join(fixed_versions),
        title=fields.text(vulnerability, "description", vulnerability_where)[:200],
        aliases=tuple(alias for alias in related if alias and alias != vulnerability_id),
    )


def _first_location(artifact: Mapping[str, Any], where: str, fields: Fields) -> str:
    for location_where, location in fields.objects(artifact, "locations", where):
        return fields.text(location, "path", location_where)
    return ""
