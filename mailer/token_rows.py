"""Reading each kind of link token against the row it was minted for.

mailer.tokens checks signatures; this module knows which row each purpose
names and what that row's token is bound to, so every entry point (reader
pages, the bounce mailbox, the webhook) reads tokens the same way. Each
function returns what the token names, or raises InvalidToken (RowGone when
the row no longer exists).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import tokens
from mailer.models import Consent, Delivery, Subscriber, TransactionalMail, new_token_key
from mailer.tokens import Keys, Purpose


def rotate_key(subscriber: Subscriber) -> None:
    """Give the subscriber a new token key: every link minted for them stops working."""
    subscriber.token_key = new_token_key()


def _row_id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _subscriber_key(session: Session, subscriber_id: int | None) -> str | None:
    if subscriber_id is None:
        return None
    return session.scalar(select(Subscriber.token_key).where(Subscriber.id == subscriber_id))


def consent(session: Session, keys: Keys, purpose: Purpose, token: str) -> int:
    """The consent (signup request) a confirm or "this wasn't me" link names."""

    def bind(value: Any) -> str | None:
        consent_id = _row_id(value)
        if consent_id is None:
            return None
        return session.scalar(select(Consent.token_key).where(Consent.id == consent_id))

    return tokens.read(keys, purpose, token, bind=bind)


def preferences(session: Session, keys: Keys, token: str, *, max_age: float) -> int:
    """The subscriber a preferences link names, while the link is younger than `max_age`."""
    return tokens.read(
        keys,
        Purpose.PREFERENCES,
        token,
        bind=lambda value: _subscriber_key(session, _row_id(value)),
        max_age=max_age,
    )


def _listed(value: Any, length: int) -> list[Any] | None:
    if not (isinstance(value, list) and len(value) == length):
        return None
    if _row_id(value[0]) is None or not all(isinstance(item, str) for item in value[1:]):
        return None
    return value


def address_change(session: Session, keys: Keys, token: str) -> tuple[int, str]:
    """(subscriber id, new address) of a link mailed to the new address."""
    value = tokens.read(
        keys,
        Purpose.ADDRESS_CHANGE,
        token,
        bind=lambda claimed: _subscriber_key(session, (_listed(claimed, 2) or [None])[0]),
    )
    return value[0], value[1]


def address_undo(session: Session, keys: Keys, token: str) -> tuple[int, str, str]:
    """(subscriber id, old address, new address) of the undo link mailed to the old address."""
    value = tokens.read(
        keys,
        Purpose.ADDRESS_UNDO,
        token,
        bind=lambda claimed: _subscriber_key(session, (_listed(claimed, 3) or [None])[0]),
    )
    return value[0], value[1], value[2]


def one_click(session: Session, keys: Keys, token: str) -> tuple[int, int | None]:
    """(subscriber id, campaign id or None) of a List-Unsubscribe token."""
    subscriber_id, campaign_id = tokens.read_compact(
        keys,
        Purpose.UNSUBSCRIBE,
        token,
        2,
        bind=lambda ids: _subscriber_key(session, ids[0]),
    )
    return subscriber_id, campaign_id or None


def bounce_delivery(session: Session, keys: Keys, token: str) -> int:
    """The campaign delivery a VERP return path names."""

    def bind(ids: tuple[int, ...]) -> str | None:
        row = session.execute(
            select(Delivery.campaign_id, Delivery.subscriber_id, Subscriber.token_key)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id == ids[0])
        ).first()
        return tokens.delivery_binding(*row) if row else None

    (delivery_id,) = tokens.read_compact(keys, Purpose.BOUNCE, token, 1, bind=bind)
    return delivery_id


def bounce_mail(session: Session, keys: Keys, token: str) -> int:
    """The transactional mail a VERP return path names."""

    def bind(ids: tuple[int, ...]) -> str | None:
        row = session.execute(
            select(TransactionalMail.kind, TransactionalMail.email).where(
                TransactionalMail.id == ids[0]
            )
        ).first()
        return tokens.mail_binding(*row) if row else None

    (mail_id,) = tokens.read_compact(keys, Purpose.BOUNCE_MAIL, token, 1, bind=bind)
    return mail_id
