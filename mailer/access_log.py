"""gunicorn's logs without link tokens: `--logger-class mailer.access_log.TokenSafeLogger`.

A confirm, preferences or unsubscribe token in a URL is as good as the
reader's password for that page; access logs are kept long and read by many.
Every request line, path, referrer and header that gunicorn would log has its
tokens cut (`/preferences/…/data.json`), in the access log and the error log.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from mailer import redact
from mailer.redact import TokenFilter


class TokenSafeLogger(Logger):
    """gunicorn's logger, with tokens cut from every atom of the access log format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.addFilter(TokenFilter())

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict[str, Any]:
        return {
            key: redact.token_paths(value) if isinstance(value, str) else value
            for key, value in super().atoms(resp, req, environ, request_time).items()
        }
