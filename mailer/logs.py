"""Structured logs: one JSON object a line (or plain text for a terminal)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from mailer.redact import TokenFilter


def configure(log_format: str) -> None:
    """Log INFO and up from mailer and worker; format the root handler unless one exists.

    Celery and pytest install their own root handlers; those are left alone
    so that lines are neither doubled nor hidden from the test's log capture.
    """
    for name in ("mailer", "worker"):
        logging.getLogger(name).setLevel(logging.INFO)
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    # Flask logs "Exception on /preferences/TOKEN [POST]": no token reaches a log line.
    handler.addFilter(TokenFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
