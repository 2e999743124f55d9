"""soar: incident detection and fast response.

Sigma rules compiled to Elasticsearch, playbooks on Celery, verified and
reversible containment over SSH, Slack on-call, and a tamper-evident record of
every run.
"""

from soar._version import __version__
from soar.errors import ConfigError, SoarError, SourceLocation

__all__ = ["ConfigError", "SoarError", "SourceLocation", "__version__"]
