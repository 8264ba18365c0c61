"""The names of the report formats that scan steps read, and how messages name them."""

from __future__ import annotations

from collections.abc import Mapping

#: The scan type that accepts every format, detected from each report's content.
ANY_FORMAT = "auto"

#: Format name -> how messages name it, in the order ``shipline schema`` lists them.
FORMAT_TITLES: Mapping[str, str] = {
    "trivy": "Trivy JSON",
    "grype": "Grype JSON",
    "sarif": "SARIF",
    "osv-scanner": "OSV-Scanner JSON",
    "cyclonedx": "CycloneDX",
}
