"""CycloneDX JSON documents with a ``vulnerabilities`` list (VEX or an SBOM with findings,
as written by ``trivy --format cyclonedx`` or ``grype -o cyclonedx-json``).

One finding per entry of ``vulnerabilities[]``, not per ``affects`` reference. Entries
whose ``analysis.state`` is ``not_affected``, ``false_positive``, ``resolved`` or
``resolved_with_pedigree`` are left out; ``in_triage`` and ``exploitable`` count.

Severity: ``ratings[]`` are opinions of several sources with no primary one, so the
highest qualitative ``severity`` wins (``info`` and ``none`` are low). When no rating
has one, the highest ``score`` of the ratings whose ``method`` starts with ``CVSS`` is
banded. Ratings with ``method: other`` (EPSS, KEV and the like) are never severities.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.scan.finding import Finding, Severity, band_score, severity_from_word
from pipeline.scan.reader import Fields

FORMAT = "cyclonedx"

#: Analysis states that mark the vulnerability as not applying (CycloneDX 1.4-1.6).
DISMISSED_STATES = frozenset({"not_affected", "false_positive", "resolved",
                              "resolved_with_pedigree"})


def parse(data: Any, fields: Fields) -> list[Finding]:
    """Return the findings of a parsed CycloneDX document; raise ReportError when
    malformed."""
    document = fields.mapping(data, "$")
    components = dict(_components(document, "", fields))
    metadata = fields.mapping(document.get("metadata"), "metadata")
    subject = fields.mapping(metadata.get("component"), "metadata.component")
    location = fields.text(subject, "name", "metadata.component")

    findings = []
    for where, entry in fields.objects(document, "vulnerabilities", ""):
        analysis = fields.mapping(entry.get("analysis"), f"{where}.analysis")
        if fields.text(analysis, "state", f"{where}.analysis") in DISMISSED_STATES:
            continue
        findings.append(_finding(entry, where, components, location, fields))
    return findings


def _components(
    parent: Mapping[str, Any], where: str, fields: Fields
) -> Iterator[tuple[str, tuple[str, str]]]:
    """Yield ``bom-ref -> (name, version)`` for every component, nested ones included."""
    for component_where, component in fields.objects(parent, "components", where):
        reference = fields.text(component, "bom-ref", component_where)
        if reference:
            yield reference, (fields.text(component, "name", component_where),
                              fields.text(component, "version", component_where))
        yield from _components(component, component_where, fields)


def _finding(
    entry: Mapping[str, Any], where: str, components: Mapping[str, tuple[str, str]],
    location: str, fields: Fields,
) -> Finding:
    vulnerability_id = fields.text(entry, "id", where)
    if not vulnerability_id:
        raise fields.error(where, "id is missing")

    names: list[str] = []
    versions: list[str] = []
    fixed: list[str] = []
    for affect_where, affect in fields.objects(entry, "affects", where):
        reference = fields.text(affect, "ref", affect_where)
        name, version = components.get(reference, (reference, ""))
        names.append(name)
        versions.append(version)
        for version_where, item in fields.objects(affect, "versions", affect_where):
            if fields.text(item, "status", version_where) == "unaffected":
                fixed.append(fields.text(item, "version", version_where))

    severity, raw, score = _severity(entry, where, fields)
    recommendation = fields.text(entry, "recommendation", where)
    return Finding(
        id=vulnerability_id, severity=severity, report=fields.file, raw_severity=raw,
        package=", ".join(dict.fromkeys(names)), version=", ".join(dict.fromkeys(versions)),
        location=location, fix_available=bool(fixed or recommendation),
        fixed_in=", ".join(f for f in fixed if f),
        title=fields.text(entry, "description", where)[:200], score=score,
    )


def _severity(
    entry: Mapping[str, Any], where: str, fields: Fields
) -> tuple[Severity, str, float | None]:
    """Return the severity, the text it came from and the highest CVSS score."""
    words: list[tuple[Severity, str]] = []
    scores: list[float] = []
    for rating_where, rating in fields.objects(entry, "ratings", where):
        word = fields.text(rating, "severity", rating_where)
        severity = severity_from_word(word)
        if word and severity is not Severity.UNKNOWN:
            words.append((severity, word))
        method = fields.text(rating, "method", rating_where)
        score = fields.number(rating, "score", rating_where)
        if method.upper().startswith("CVSS") and score is not None:
            scores.append(score)

    highest_score = max(scores) if scores else None
    if words:
        severity, word = max(words, key=lambda pair: pair[0])
        return severity, word, highest_score
    if highest_score is not None:
        return band_score(highest_score), f"CVSS {highest_score:g}", highest_score
    return Severity.UNKNOWN, "", None
