"""What a subscriber changes from their signed preferences link, and the links to get there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import antispam, events, suppression, time_zones, token_rows
from mailer.errors import AddressChangeRefused, InvalidToken
from mailer.models import (
    Frequency,
    MailKind,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
)
from mailer.subscriptions import queue_mail


@dataclass(frozen=True, slots=True)
class Choices:
    topics: Sequence[str]
    frequency: str
    name: str
    time_zone: str  # "" = the site's


def _subscriber(session: Session, subscriber_id: int, *, lock: bool = False) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=lock)
    if subscriber is None:  # erased since the link was sent
        raise InvalidToken("preferences")
    return subscriber


def update(session: Session, subscriber_id: int, choices: Choices, *, now: datetime) -> None:
    """Apply the reader's choices; the next send follows them (topics are read at send time)."""
    subscriber = _subscriber(session, subscriber_id, lock=True)
    chosen = [topic.value for topic in Topic if topic.value in set(choices.topics)]
    subscriber.topics = [SubscriberTopic(topic=topic) for topic in chosen]
    subscriber.frequency = Frequency(choices.frequency)
    subscriber.name = choices.name.strip()[:100]
    subscriber.time_zone = time_zones.canonical(choices.time_zone)
    session.flush()
    events.record_subscriber(session, events.SUBSCRIBER_UPDATED, subscriber, now=now)


def request_address_change(
    session: Session, subscriber_id: int, new_email: str, *, now: datetime
) -> int | None:
    """Queue a confirmation to `new_email`; the old address stays until it is confirmed.

    Returns the mail to send after commit, or None when it is held back (the
    same per-address limits as signups, so the form cannot bomb a stranger).
    """
    subscriber = _subscriber(session, subscriber_id, lock=True)
    if subscriber.status != SubscriberStatus.CONFIRMED:
        raise AddressChangeRefused("Only a confirmed subscription can move to a new address.")
    if new_email == subscriber.email:
        raise AddressChangeRefused("That is the address you are subscribed with already.")
    if antispam.check_address_limits(session, new_email, now=now).refused:
        return None
    return queue_mail(
        session, subscriber_id=subscriber.id, email=new_email, kind=MailKind.ADDRESS_CHANGE, now=now
    )


def confirm_address_change(
    session: Session, subscriber_id: int, new_email: str, *, now: datetime
) -> int | None:
    """Move the subscription to `new_email` (proven by the link mailed there).

    Every link minted for the subscriber stops working (a new token key), and
    the old address is told, with a link to undo the move: whoever got hold of
    a preferences link cannot quietly take a subscription away. Returns that
    notice's mail id to send after commit; None for a replayed link.
    """
    subscriber = _subscriber(session, subscriber_id, lock=True)
    if subscriber.email == new_email:
        return None  # a replayed link
    old_email = subscriber.email
    _move(session, subscriber, new_email)
    events.record_subscriber(session, events.SUBSCRIBER_UPDATED, subscriber, now=now)
    return queue_mail(
        session,
        subscriber_id=subscriber.id,
        email=old_email,
        kind=MailKind.ADDRESS_CHANGED,
        now=now,
    )


def _move(session: Session, subscriber: Subscriber, email: str) -> None:
    """Put the subscription on `email`, with a new token key: every earlier link is void.

    Refused for an address that has its own subscription or must not be mailed.
    """
    taken = session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    if taken is not None:
        raise AddressChangeRefused(
            "That address has a subscription of its own: unsubscribe it first, or keep this one."
        )
    if suppression.reason_for(session, email) not in (None, *suppression.LIFTED_BY_OPT_IN):
        raise AddressChangeRefused("We cannot send to that address (it bounced or complained).")
    suppression.lift(session, email)
    subscriber.email = email
    subscriber.soft_bounces = 0
    token_rows.rotate_key(subscriber)
    session.flush()


def undo_address_change(
    session: Session, subscriber_id: int, old_email: str, new_email: str, *, now: datetime
) -> bool:
    """Move the subscription back to `old_email` (the link mailed there after a move).

    Only the latest move can be undone: once the subscription moved on, or came
    back, the link changes nothing. Links minted since the move stop working.
    Returns False when it is back already.
    """
    subscriber = _subscriber(session, subscriber_id, lock=True)
    if subscriber.email == old_email:
        return False
    if subscriber.email != new_email:
        raise AddressChangeRefused("The subscription has moved again since; this link is spent.")
    _move(session, subscriber, old_email)
    events.record_subscriber(session, events.SUBSCRIBER_UPDATED, subscriber, now=now)
    return True


def forget_links(session: Session, subscriber_id: int) -> None:
    """Revoke every link ever mailed to the subscriber (preferences, unsubscribe, ...).

    The next mail carries fresh ones; "email me a link" sends one at once.
    """
    token_rows.rotate_key(_subscriber(session, subscriber_id, lock=True))
    session.flush()


def request_link(session: Session, email: str, *, now: datetime) -> int | None:
    """ "Email me a link": a preferences link for a subscriber, nothing for anyone else.

    The page answers the same either way, so it tells nobody who subscribes.
    """
    subscriber = session.scalar(
        select(Subscriber).where(
            Subscriber.email == email,
            Subscriber.status.in_([SubscriberStatus.CONFIRMED, SubscriberStatus.UNSUBSCRIBED]),
        )
    )
    if subscriber is None or antispam.check_address_limits(session, email, now=now).refused:
        return None
    return queue_mail(
        session,
        subscriber_id=subscriber.id,
        email=email,
        kind=MailKind.PREFERENCES_LINK,
        now=now,
    )
