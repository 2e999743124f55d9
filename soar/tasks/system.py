"""Tasks that prove the worker is alive and wired to the same code and settings."""

from __future__ import annotations

import os
import socket
from typing import Any

from soar import __version__
from soar.celery_app import app
from soar.dispatch import Task


@app.task(name=Task.PING.value, ignore_result=False)  # its answer is the point
def ping(token: str) -> dict[str, Any]:
    """Echo a token with the worker's identity, so a test knows a real worker answered."""
    return {"token": token, "pid": os.getpid(), "host": socket.gethostname(), "version": __version__}
