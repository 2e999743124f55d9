"""The tamper-evident audit log: who (person or automation) did what, when, to what.

``record`` appends a hash-chained entry; ``verify`` names any modified, removed or
reordered entry; ``export_bundle`` writes evidence for auditors (JSON + HTML).
"""

from soar.audit.chain import Finding, Verification, iter_entries, record, verify
from soar.audit.export import export_bundle
from soar.audit.redact import configured_secrets, redact

__all__ = [
    "Finding",
    "Verification",
    "configured_secrets",
    "export_bundle",
    "iter_entries",
    "record",
    "redact",
    "verify",
]
