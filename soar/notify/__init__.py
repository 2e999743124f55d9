"""Slack on-call: incident cards and threads, interactive approvals, and an outbox that loses nothing.

The engine publishes run events; :func:`notify_run_event` turns each into a
thread reply and a card update, stored in the outbox before anything is sent.
:mod:`soar.notify.delivery` sends the outbox (paced, retried, deduplicated);
without a bot token the same content goes to the log. See docs/notify.md.
"""

from soar.notify.delivery import Deliverer, DeliveryReport
from soar.notify.outbox import Message
from soar.notify.routing import Routes, load_routes
from soar.notify.service import (
    deliver,
    deliver_all,
    ephemeral,
    kick,
    notify_alert,
    notify_run_event,
    notify_text,
    resume,
)
from soar.notify.transport import ConsoleTransport, SlackTransport, Transport, transport_for

__all__ = [
    "ConsoleTransport",
    "Deliverer",
    "DeliveryReport",
    "Message",
    "Routes",
    "SlackTransport",
    "Transport",
    "deliver",
    "deliver_all",
    "ephemeral",
    "kick",
    "load_routes",
    "notify_alert",
    "notify_run_event",
    "notify_text",
    "resume",
    "transport_for",
]
