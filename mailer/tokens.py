"""Signed tokens for links in mail. A token made for one purpose fails for any other."""

from __future__ import annotations

import enum

from itsdangerous import BadSignature, URLSafeTimedSerializer

from mailer.errors import InvalidToken


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    NOT_ME = "not-me"
    PREFERENCES = "preferences"


DAY = 86400
# A confirmation link lives as long as the pending signup (7 days); the
# preferences link must work for the life of any mail that carries it.
MAX_AGE: dict[Purpose, int | None] = {
    Purpose.CONFIRM: 7 * DAY,
    Purpose.NOT_ME: 30 * DAY,
    Purpose.PREFERENCES: None,
}


def _serializer(secret_key: str, purpose: Purpose) -> URLSafeTimedSerializer:
    # A salt per purpose: a confirm token can never be replayed as another action.
    return URLSafeTimedSerializer(secret_key, salt=f"mailer.{purpose}")


def make(secret_key: str, purpose: Purpose, subject_id: int) -> str:
    """A URL-safe token naming `subject_id` for `purpose`."""
    return _serializer(secret_key, purpose).dumps(subject_id)


def read(secret_key: str, purpose: Purpose, token: str) -> int:
    """Return the id in `token`, or raise InvalidToken (bad, expired or wrong purpose)."""
    try:
        value = _serializer(secret_key, purpose).loads(token, max_age=MAX_AGE[purpose])
    except BadSignature:  # SignatureExpired is a subclass
        raise InvalidToken(purpose) from None
    if not isinstance(value, int):
        raise InvalidToken(purpose)
    return value
