"""Base scores of CVSS vectors, computed with the ``cvss`` package (Red Hat's library).

OSV records carry CVSS vectors without scores, so the score is computed here. The
library is imported on first use, because only OSV reports without ``max_severity``
need it.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("shipline")


def base_score(vector: str) -> float | None:
    """Return the base score (0.0-10.0) of a CVSS v2, v3.x or v4.0 vector.

    The version is read from the prefix: ``CVSS:3.0/``, ``CVSS:3.1/``, ``CVSS:4.0/``,
    and none for v2. Returns None for a vector the library rejects.
    """
    from cvss import CVSS2, CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    text = vector.strip()
    try:
        if text.startswith("CVSS:4."):
            return float(CVSS4(text).base_score)
        if text.startswith("CVSS:3."):
            return float(CVSS3(text).base_score)
        return float(CVSS2(text).base_score)
    except (CVSSError, ValueError, KeyError, IndexError) as exc:
        logger.debug("CVSS vector %r not scored: %s", text, exc)
        return None
