"""SSH failures as soar errors. paramiko's exceptions never cross this package.

ServiceUnavailable
└── SSHError               a host cannot be used (names the host, never a password)
    ├── HostUnreachable    no TCP path, connect/banner/auth timeout, the bastion cannot open the tunnel
    ├── HostKeyRejected    no pinned key, or the host presented a different key
    ├── AuthenticationFailed
    └── ConnectionLost     the connection dropped while a command ran
"""

from __future__ import annotations

from soar.errors import ServiceUnavailable


class SSHError(ServiceUnavailable):
    """A host could not be used over SSH."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"host {host}: {message}")
        self.host = host
        self.reason = message


class HostUnreachable(SSHError):
    """No connection could be made (after retries)."""


class HostKeyRejected(SSHError):
    """The host key is unknown or differs from the pinned one; never auto-added."""


class AuthenticationFailed(SSHError):
    """The host refused our credentials."""


class ConnectionLost(SSHError):
    """The connection dropped while a command was running."""
