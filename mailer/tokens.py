"""Signed tokens for links in mail. A token made for one purpose fails for any other.

Two forms: `make`/`read` (itsdangerous, time-stamped, for links that expire)
and `make_compact`/`read_compact` for tokens that must also fit in the local
part of an address (`unsubscribe+TOKEN@`, `bounce+TOKEN@`: at most 64
characters, and relays may change their case), so they are short, lower-case
and never expire.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re

from itsdangerous import BadSignature, URLSafeTimedSerializer

from mailer.errors import InvalidToken


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    NOT_ME = "not-me"
    PREFERENCES = "preferences"
    ADDRESS_CHANGE = "address-change"
    # Compact tokens:
    UNSUBSCRIBE = "unsubscribe"  # (subscriber id, campaign id or 0): List-Unsubscribe
    BOUNCE = "bounce"  # (delivery id,): the VERP return path of a campaign mail
    BOUNCE_MAIL = "bounce-mail"  # (transactional mail id,)
    WEB_VIEW = "web-view"  # (campaign id,): the "view in your browser" page, no reader in it


DAY = 86400
# A confirmation link lives as long as the pending signup (7 days); the
# preferences link must work for the life of any mail that carries it.
MAX_AGE: dict[Purpose, int | None] = {
    Purpose.CONFIRM: 7 * DAY,
    Purpose.NOT_ME: 30 * DAY,
    Purpose.PREFERENCES: None,
    Purpose.ADDRESS_CHANGE: 2 * DAY,
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


def read_value(secret_key: str, purpose: Purpose, token: str) -> object:
    """The JSON value in a `make`-token of any shape (e.g. [id, new address])."""
    try:
        return _serializer(secret_key, purpose).loads(token, max_age=MAX_AGE[purpose])
    except BadSignature:
        raise InvalidToken(purpose) from None


def make_value(secret_key: str, purpose: Purpose, value: object) -> str:
    return _serializer(secret_key, purpose).dumps(value)


COMPACT = re.compile(r"^(\d{1,12}(?:-\d{1,12})*)-([a-z2-7]{16})$")


def _mac(secret_key: str, purpose: Purpose, body: str) -> str:
    key = hashlib.sha256(f"mailer.{purpose}:{secret_key}".encode()).digest()
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()[:10]  # 80 bits
    return base64.b32encode(digest).decode().lower()


def make_compact(secret_key: str, purpose: Purpose, *ids: int) -> str:
    """`12-0-abcdefghijklmnop`: the ids, then an 80-bit HMAC over them and the purpose."""
    body = "-".join(str(int(value)) for value in ids)
    return f"{body}-{_mac(secret_key, purpose, body)}"


def read_compact(secret_key: str, purpose: Purpose, token: str, count: int) -> tuple[int, ...]:
    """The `count` ids in a compact token, or InvalidToken (forged, truncated, wrong purpose)."""
    match = COMPACT.match(token.strip().lower())
    if match is None:
        raise InvalidToken(purpose)
    body, mac = match.groups()
    ids = tuple(int(value) for value in body.split("-"))
    if len(ids) != count or not hmac.compare_digest(mac, _mac(secret_key, purpose, body)):
        raise InvalidToken(purpose)
    return ids
