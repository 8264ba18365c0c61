"""Reading vulnerability reports that scanners wrote earlier in the CI job.

One module per report format (:mod:`.trivy`, :mod:`.grype`, :mod:`.sarif`, :mod:`.osv`,
:mod:`.cyclonedx`) turns a parsed JSON document into :class:`~.finding.Finding` objects
with one normalized :class:`~.finding.Severity`. :mod:`.detect` picks the format from
the content, :mod:`.policy` decides which findings block a run, and :mod:`.sarifout`
writes the blocking findings as SARIF 2.1.0. The ``scan`` step itself is the plugin
:mod:`pipeline.builtin.scan`.
"""
