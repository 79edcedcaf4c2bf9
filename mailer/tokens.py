"""Signed tokens for links in mail. A token made for one purpose fails for any other.

Two forms: `make`/`read` (itsdangerous, time-stamped, for links that expire)
and `make_compact`/`read_compact` for tokens that must also fit in the local
part of an address (`unsubscribe+TOKEN@`, `bounce+TOKEN@`: at most 64
characters, and relays may change their case), so they are short, lower-case
and never expire.

Every token is bound to the row it was minted for by more than its id: the
signature also covers a `bind` value that only that row has (its random
`token_key`, see mailer.token_rows), which the token itself does not carry.
A token checked against another row (an id reused after a delete) or the
same row re-keyed (erased, moved to a new address, links revoked) fails.

`keys` is the secret key, or the secret keys newest first (Settings.secret_keys):
tokens are signed with the first and verified with any, so a key can be
rotated without breaking the links already in people's mailboxes.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from mailer.errors import InvalidToken

Keys = str | Sequence[str]


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    NOT_ME = "not-me"
    PREFERENCES = "preferences"
    ADDRESS_CHANGE = "address-change"
    ADDRESS_UNDO = "address-undo"  # sent to the old address after a change
    # Compact tokens:
    UNSUBSCRIBE = "unsubscribe"  # (subscriber id, campaign id or 0): List-Unsubscribe
    BOUNCE = "bounce"  # (delivery id,): the VERP return path of a campaign mail
    BOUNCE_MAIL = "bounce-mail"  # (transactional mail id,)
    WEB_VIEW = "web-view"  # (campaign id,): the "view in your browser" page, no reader in it


class RowGone(InvalidToken):
    """The token names a row that no longer exists, so it cannot be checked at all."""


DAY = 86400
# A confirmation link lives as long as the pending signup (7 days). Preferences
# links expire after MAILER_PREFERENCES_LINK_DAYS, which the caller passes in.
MAX_AGE: dict[Purpose, float | None] = {
    Purpose.CONFIRM: 7 * DAY,
    Purpose.NOT_ME: 30 * DAY,
    Purpose.PREFERENCES: 30 * DAY,
    Purpose.ADDRESS_CHANGE: 2 * DAY,
    Purpose.ADDRESS_UNDO: 30 * DAY,
}


def _keys(keys: Keys) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


def _serializer(keys: Keys, purpose: Purpose, bind: str) -> URLSafeTimedSerializer:
    # A salt per purpose: a confirm token can never be replayed as another action.
    # The row's key joins the salt, so it is in the signature but not in the token;
    # an empty key (rows from before migration 0010) signs as tokens always did.
    salt = f"mailer.{purpose}" + (f":{bind}" if bind else "")
    # itsdangerous signs with the last key of the list and verifies with any.
    return URLSafeTimedSerializer(list(reversed(_keys(keys))), salt=salt)


def make(keys: Keys, purpose: Purpose, value: object, *, bind: str) -> str:
    """A URL-safe token carrying `value` (an id, or a small JSON list) for `purpose`."""
    return _serializer(keys, purpose, bind).dumps(value)


def read(
    keys: Keys,
    purpose: Purpose,
    token: str,
    *,
    bind: Callable[[Any], str | None],
    max_age: float | None = None,
) -> Any:
    """The value in `token`, once its signature checks out against the row it names.

    `bind(value)` returns that row's key, or None when the row is gone
    (RowGone). Raises InvalidToken when the token is forged, expired, made
    for another purpose or for another row.
    """
    _signed, claimed = _serializer(keys, purpose, "").loads_unsafe(token)
    if claimed is None:
        raise InvalidToken(purpose)
    row_key = bind(claimed)  # the claim only picks the row; the signature decides
    if row_key is None:
        raise RowGone(purpose)
    try:
        return _serializer(keys, purpose, row_key).loads(
            token, max_age=MAX_AGE[purpose] if max_age is None else max_age
        )
    except BadSignature:  # SignatureExpired is a subclass
        raise InvalidToken(purpose) from None


COMPACT = re.compile(r"^(\d{1,12}(?:-\d{1,12})*)-([a-z2-7]{16})$")


def _mac(key: str, purpose: Purpose, body: str, bind: str) -> str:
    derived = hashlib.sha256(f"mailer.{purpose}:{key}".encode()).digest()
    message = f"{body}:{bind}" if bind else body
    digest = hmac.new(derived, message.encode(), hashlib.sha256).digest()[:10]  # 80 bits
    return base64.b32encode(digest).decode().lower()


def make_compact(keys: Keys, purpose: Purpose, *ids: int, bind: str) -> str:
    """`12-0-abcdefghijklmnop`: the ids, then an 80-bit HMAC over them, the purpose and `bind`."""
    body = "-".join(str(int(value)) for value in ids)
    return f"{body}-{_mac(_keys(keys)[0], purpose, body, bind)}"


def read_compact(
    keys: Keys,
    purpose: Purpose,
    token: str,
    count: int,
    *,
    bind: Callable[[tuple[int, ...]], str | None],
) -> tuple[int, ...]:
    """The `count` ids in a compact token, checked against the row they name.

    Raises InvalidToken (forged, truncated, wrong purpose or row), or RowGone.
    """
    match = COMPACT.match(token.strip().lower())
    if match is None:
        raise InvalidToken(purpose)
    body, mac = match.groups()
    ids = tuple(int(value) for value in body.split("-"))
    if len(ids) != count:
        raise InvalidToken(purpose)
    row_key = bind(ids)
    if row_key is None:
        raise RowGone(purpose)
    if not any(hmac.compare_digest(mac, _mac(key, purpose, body, row_key)) for key in _keys(keys)):
        raise InvalidToken(purpose)
    return ids


def delivery_binding(campaign_id: int, subscriber_id: int, subscriber_key: str) -> str:
    """What a campaign mail's VERP token is bound to: its campaign, reader and their key."""
    return f"{campaign_id}:{subscriber_id}:{subscriber_key}"


def mail_binding(kind: str, email: str) -> str:
    """What a transactional mail's VERP token is bound to: the kind and the address it went to."""
    return f"{kind}:{email}"
