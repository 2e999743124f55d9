"""Credentials embedded in URLs are never shown: one helper for every place a URL can be printed or logged.

``redis://:secret@host:6379/0`` is shown as ``redis://:***@host:6379/0`` and
``https://user:pw@es:9200`` as ``https://user:***@es:9200`` — by ``soar config show``,
``soar services check``, error messages and (through :func:`mask_log_records`) every log line
of the process. Only the password is masked: the user name and the host still say which
account and which server were meant. Imports nothing heavy: the CLI's error path uses it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# scheme://user:password@ — the password runs to the last "@" before the path (an unencoded "@" in it
# is what urllib reads too), and stops at white space so a sentence with two URLs keeps both hosts
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<password>[^/\s]*)@")


def mask_url(text: str) -> str:
    """``text`` (a URL, or a message naming URLs) with every URL's password replaced by ``***``."""
    if "://" not in text or "@" not in text:  # the common case: nothing to mask, no regex
        return text
    return _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@" if m["password"] else m[0], text)


def url_passwords(text: str) -> list[str]:
    """The passwords written into the URLs of ``text`` (as written, and percent-decoded), for redaction."""
    from urllib.parse import unquote

    found = [m["password"] for m in _USERINFO.finditer(text) if m["password"]] if "://" in text else []
    return [*found, *(unquote(p) for p in found if unquote(p) != p)]


def mask_values(values: dict[str, Any]) -> dict[str, Any]:
    """Settings as printed: every string value with its URL passwords masked."""
    return {name: mask_url(value) if isinstance(value, str) else value for name, value in values.items()}


_installed = False


def mask_log_records() -> None:
    """From now on every log record of this process has its URL passwords masked (message and traceback).

    A record factory rather than a handler filter: it applies to every logger and every handler,
    including those a library or Celery adds later. Idempotent.
    """
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself when it formats
            return record
        masked = mask_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if mask_url(text) != text:
                record.exc_text = mask_url(text)  # what formatters print instead of formatting it again
        return record

    logging.setLogRecordFactory(factory)
