"""Post-incident review: run timelines, response metrics, the threat-mitigation chart, reports."""
