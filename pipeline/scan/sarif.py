"""SARIF 2.1.0 logs (CodeQL, Semgrep, and Trivy or Grype with ``--format sarif``).

One finding per entry of ``runs[].results[]``, except results that are suppressed
(a ``suppressions`` entry whose ``status`` is absent or ``accepted``, such as a
``# nosemgrep`` comment) and results whose ``kind`` is not ``fail`` (an absent kind
means ``fail``).

Severity: a numeric ``security-severity`` property, on the result first and then on
its rule, is banded like a CVSS score. Without one, the level decides: the result's
``level``, else the rule's ``defaultConfiguration.level``, else SARIF's default
``warning``. ``error`` is high, ``warning`` medium, ``note`` low and ``none`` unknown.
The rule is found by ``ruleIndex`` in ``tool.driver.rules``, else by ``ruleId``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pipeline.scan.finding import Finding, Severity, band_score
from pipeline.scan.reader import Fields

FORMAT = "sarif"

LEVELS: Mapping[str, Severity] = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "note": Severity.LOW,
    "none": Severity.UNKNOWN,
}

#: The level a result has when neither it nor its rule sets one (SARIF 2.1.0, 3.27.10).
DEFAULT_LEVEL = "warning"

#: Suppression statuses that hide a result; an absent status means accepted.
_SUPPRESSING = ("", "accepted")


def parse(data: Any, fields: Fields) -> list[Finding]:
    """Return the findings of a parsed SARIF log; raise ReportError when malformed."""
    document = fields.mapping(data, "$")
    findings = []
    for run_where, run in fields.objects(document, "runs", ""):
        rules = _rules(run, run_where, fields)
        for where, result in fields.objects(run, "results", run_where):
            if _counts(result, where, fields):
                findings.append(_finding(result, where, rules, fields))
    return findings


def _rules(run: Mapping[str, Any], where: str, fields: Fields) -> list[Mapping[str, Any]]:
    tool = fields.mapping(run.get("tool"), f"{where}.tool")
    driver = fields.mapping(tool.get("driver"), f"{where}.tool.driver")
    return [rule for _, rule in fields.objects(driver, "rules", f"{where}.tool.driver")]


def _counts(result: Mapping[str, Any], where: str, fields: Fields) -> bool:
    """Tell whether ``result`` is a failure that no suppression accepted."""
    kind = fields.text(result, "kind", where) or "fail"
    if kind != "fail":
        return False
    for suppression_where, suppression in fields.objects(result, "suppressions", where):
        if fields.text(suppression, "status", suppression_where) in _SUPPRESSING:
            return False
    return True


def _finding(
    result: Mapping[str, Any], where: str, rules: list[Mapping[str, Any]], fields: Fields
) -> Finding:
    rule = _rule_of(result, where, rules, fields)
    rule_id = (fields.text(result, "ruleId", where)
               or fields.text(rule, "id", f"{where}.rule") or "(no rule id)")
    severity, raw, score = _severity(result, rule, where, fields)
    uri, line = _location(result, where, fields)
    message = fields.mapping(result.get("message"), f"{where}.message")
    return Finding(
        id=rule_id,
        severity=severity,
        report=fields.file,
        raw_severity=raw,
        location=uri,
        line=line,
        fix_available=bool(result.get("fixes")),
        title=fields.text(message, "text", f"{where}.message"),
        score=score,
    )


def _rule_of(
    result: Mapping[str, Any], where: str, rules: list[Mapping[str, Any]], fields: Fields
) -> Mapping[str, Any]:
    index = result.get("ruleIndex")
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rules):
        return rules[index]
    rule_id = fields.text(result, "ruleId", where)
    for rule in rules:
        if rule_id and rule.get("id") == rule_id:
            return rule
    return {}


def _severity(
    result: Mapping[str, Any], rule: Mapping[str, Any], where: str, fields: Fields
) -> tuple[Severity, str, float | None]:
    """Return the severity, the text it came from and the score, if there was one."""
    for owner in (result, rule):
        score = _security_severity(owner)
        if score is not None:
            return band_score(score), f"security-severity {score:g}", score

    level = fields.text(result, "level", where)
    if not level:
        configuration = fields.mapping(rule.get("defaultConfiguration"), f"{where}.rule")
        level = fields.text(configuration, "level", f"{where}.rule.defaultConfiguration")
    level = level or DEFAULT_LEVEL
    return LEVELS.get(level, Severity.UNKNOWN), level, None


def _security_severity(owner: Mapping[str, Any]) -> float | None:
    """Return the numeric ``security-severity`` property, or None when absent or not a
    number: tools write it as a string, and a word there is not a score."""
    properties = owner.get("properties")
    if not isinstance(properties, Mapping):
        return None
    value = properties.get("security-severity")
    if isinstance(value, bool) or value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def _location(result: Mapping[str, Any], where: str, fields: Fields) -> tuple[str, int | None]:
    """Return the first location's artifact URI and start line (``None`` if not given)."""
    for location_where, location in fields.objects(result, "locations", where):
        physical_where = f"{location_where}.physicalLocation"
        physical = fields.mapping(location.get("physicalLocation"), physical_where)
        artifact = fields.mapping(physical.get("artifactLocation"),
                                  f"{physical_where}.artifactLocation")
        region = fields.mapping(physical.get("region"), f"{physical_where}.region")
        line = fields.number(region, "startLine", f"{physical_where}.region")
        uri = fields.text(artifact, "uri", f"{physical_where}.artifactLocation")
        return uri, int(line) if line is not None and line >= 1 else None
    return "", None
