"""Keeping secrets out of messages and logs: credentials in URLs, tokens in paths.

Every error that names a setting, every URL a process prints and every
request line a log records goes through one of these, so a database
password or a reader's preferences link never lands in a log file that
more people (and log shippers) can read than the secrets themselves.
"""

from __future__ import annotations

import logging
import re

# Whatever sits between "scheme://" (or the start) and the last "@" before the
# host: user and password. Hidden whole, also in URLs too malformed to parse.
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:(?://)?)?(?P<userinfo>[^/?#]*)@")
_SECRET_QUERY = re.compile(r"(?i)\b(password|pass|secret|token|key)=[^&#\s]*")

# The paths whose last-but-one segment is a link token (see mailer.web.public
# and mailer.web.reader): /confirm/TOKEN, /preferences/TOKEN/data.json, ...
TOKEN_PATH = re.compile(
    r"/(?P<kind>confirm|not-me|preferences|change-address|undo-address|u)/(?P<token>[^/?#\s\"]+)"
)


def url(raw: str) -> str:
    """`raw` with its credentials replaced by ***: smtp://***@relay:587, never the password."""
    hidden = _USERINFO.sub(lambda m: f"{m.group('scheme') or ''}***@", raw, count=1)
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", hidden)


def token_paths(text: str) -> str:
    """`text` (a request line, a path, a log message) with every link token cut out."""
    return TOKEN_PATH.sub(lambda m: f"/{m.group('kind')}/…", text)


class TokenFilter(logging.Filter):
    """A log filter that cuts link tokens out of a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = token_paths(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                token_paths(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True
