"""Hosts over SSH: inventory, transport, argument validation and the responder runner.

The actions playbooks call are declared in ``integrations/hosts.py``; their
procedures are in :mod:`soar.hosts.procedures`.
"""

from soar.hosts.errors import AuthenticationFailed, ConnectionLost, HostKeyRejected, HostUnreachable, SSHError
from soar.hosts.inventory import AmbiguousHost, Host, Inventory, UnknownHost, load_inventory
from soar.hosts.runner import HostRunner, in_parallel
from soar.hosts.transport import CommandResult, ConnectionPool, Credentials, Session, SSHOptions, connect

__all__ = [
    "AmbiguousHost",
    "AuthenticationFailed",
    "CommandResult",
    "ConnectionLost",
    "ConnectionPool",
    "Credentials",
    "Host",
    "HostKeyRejected",
    "HostRunner",
    "HostUnreachable",
    "Inventory",
    "SSHError",
    "SSHOptions",
    "Session",
    "UnknownHost",
    "connect",
    "in_parallel",
    "load_inventory",
]
