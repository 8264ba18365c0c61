from __future__ import annotations

from helpers.scanreports import read_handwritten, summary


def test_sarif_severity_order_of_sources() -> None:
    found_format, findings = read_handwritten("sarif-levels.json")

    assert found_format == "sarif"
    assert summary(findings) == [
        ("EX001", "critical", "security-severity 9.1"),
        ("EX001", "medium", "security-severity 5"),
        ("EX002", "low", "note"),
        ("EX002", "high", "error"),
        ("EX003", "medium", "warning"),
        ("EX004", "unknown", "none"),
        ("EX002", "high", "error"),
    ]


def test_sarif_locations_and_fixes() -> None:
    _, findings = read_handwritten("sarif-levels.json")

    assert [(f.location, f.line) for f in findings[:3]] == [
        ("src/app.py", 12), ("src/app.py", 40), ("", None),
    ]
    assert [f.fix_available for f in findings[:3]] == [False, False, True]
    assert findings[0].score == 9.1
    assert findings[0].title == "rule score wins over its level"
