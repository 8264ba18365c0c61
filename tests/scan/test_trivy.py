from __future__ import annotations

from helpers.scanreports import read_handwritten, summary


def test_trivy_legacy_list_with_null_vulnerabilities() -> None:
    found_format, findings = read_handwritten("trivy-legacy-list.json")

    assert found_format == "trivy"
    assert summary(findings) == [
        ("CVE-2019-1549", "medium", "MEDIUM"),
        ("CVE-2019-1563", "unknown", ""),
    ]


def test_trivy_legacy_list_fix_and_location() -> None:
    _, findings = read_handwritten("trivy-legacy-list.json")

    assert [(f.fix_available, f.fixed_in) for f in findings] == [(True, "1.1.1d-r0"), (False, "")]
    assert {f.location for f in findings} == {"alpine:3.10 (alpine 3.10.2)"}


def test_trivy_schema2_skips_secrets() -> None:
    _, findings = read_handwritten("trivy-schema2.json")

    assert summary(findings) == [
        ("CVE-2024-2511", "low", "LOW"),
        ("CVE-2023-45853", "critical", "CRITICAL"),
        ("GHSA-952p-6rrq-rcjv", "high", "HIGH"),
    ]


def test_trivy_schema2_location_prefers_pkg_path() -> None:
    _, findings = read_handwritten("trivy-schema2.json")

    assert [f.location for f in findings] == [
        "registry.example/shop:1.4.2 (debian 12.5)",
        "registry.example/shop:1.4.2 (debian 12.5)",
        "app/node_modules/micromatch/package.json",
    ]
    assert [f.fix_available for f in findings] == [True, False, True]
    assert findings[2].describe() == (
        "high GHSA-952p-6rrq-rcjv micromatch 4.0.5 in "
        "app/node_modules/micromatch/package.json (fixed in 4.0.8)"
    )
