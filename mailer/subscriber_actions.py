"""What an admin does to subscribers: one person's profile, or many at once.

Bulk actions work on a list of ids (a page's ticked rows, or every match of
a filter, read by mailer.subscriber_search) and report how many changed and
how many were left as they were (already unsubscribed, not pending, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer import antispam, events, preferences, privacy, subscriptions
from mailer.errors import InvalidFilter, SubscriberNotFound
from mailer.models import (
    Consent,
    Frequency,
    MailKind,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
)

ACTIONS = {
    "unsubscribe": "Unsubscribe",
    "add_topic": "Add a topic",
    "remove_topic": "Remove a topic",
    "resend_confirmation": "Resend the confirmation (pending only)",
    "delete": "Delete (erase their data; the address stays blocked)",
}
NEEDS_TOPIC = {"add_topic", "remove_topic"}
# Asked again before they run: they cannot be undone from the console.
DESTRUCTIVE = {"unsubscribe", "delete"}
MAX_BULK = 10_000  # a web request's worth; larger sets: filter further, or the CLI export/erase


@dataclass(slots=True)
class BulkOutcome:
    changed: int = 0
    unchanged: int = 0
    mail_ids: list[int] = field(default_factory=list)  # confirmations to queue after commit


def _resend_confirmation(session: Session, subscriber: Subscriber, *, now: datetime) -> int | None:
    """Queue the confirmation again for a pending subscriber; None when held back or not pending.

    The per-address limits of signups apply: the console cannot bomb an inbox either.
    """
    if subscriber.status != SubscriberStatus.PENDING:
        return None
    consent_id = session.scalar(
        select(Consent.id)
        .where(Consent.subscriber_id == subscriber.id, Consent.confirmed_at.is_(None))
        .order_by(Consent.id.desc())
        .limit(1)
    )
    if (
        consent_id is None
        or antispam.check_address_limits(session, subscriber.email, now=now).refused
    ):
        return None
    return subscriptions.queue_mail(
        session,
        subscriber_id=subscriber.id,
        email=subscriber.email,
        kind=MailKind.CONFIRM,
        now=now,
        consent_id=consent_id,
    )


def _one(
    session: Session, subscriber: Subscriber, action: str, topic: str, now: datetime
) -> bool | int:
    """Apply `action` to one subscriber: True/False (changed or not), or a mail id to queue."""
    if action == "unsubscribe":
        return subscriptions.unsubscribe(session, subscriber.id, now=now, channel="admin")
    if action == "delete":
        privacy.erase_subscriber(session, subscriber.id, now=now)
        return True
    if action == "resend_confirmation":
        mail_id = _resend_confirmation(session, subscriber, now=now)
        return mail_id if mail_id is not None else False
    if subscriber.status == SubscriberStatus.PENDING:
        return False  # a pending signup's topics come from its consent when confirmed
    has = topic in subscriber.topic_names
    if action == "add_topic" and not has:
        session.add(SubscriberTopic(subscriber_id=subscriber.id, topic=topic))
    elif action == "remove_topic" and has:
        session.execute(
            delete(SubscriberTopic).where(
                SubscriberTopic.subscriber_id == subscriber.id, SubscriberTopic.topic == topic
            )
        )
    else:
        return False
    session.flush()
    session.expire(subscriber, ["topics"])
    events.record_subscriber(session, events.SUBSCRIBER_UPDATED, subscriber, now=now)
    return True


def apply_bulk(
    session: Session, ids: Iterable[int], action: str, *, topic: str = "", now: datetime
) -> BulkOutcome:
    """Apply one of ACTIONS to every subscriber in `ids`; flush, never commit."""
    if action not in ACTIONS:
        raise InvalidFilter(f"unknown action {action[:40]!r}")
    if action in NEEDS_TOPIC and topic not in set(Topic):
        raise InvalidFilter("choose the topic to add or remove")
    outcome = BulkOutcome()
    for subscriber_id in ids:
        subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
        if subscriber is None:
            continue
        result = _one(session, subscriber, action, topic, now)
        session.flush()
        if result is False:
            outcome.unchanged += 1
            continue
        outcome.changed += 1
        if result is not True:  # a confirmation mail's id
            outcome.mail_ids.append(result)
    return outcome


def update_profile(
    session: Session,
    subscriber_id: int,
    *,
    name: str,
    topics: Sequence[str],
    frequency: str,
    now: datetime,
) -> list[str]:
    """An admin's change of name, topics and frequency; return the names of what changed."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound(subscriber_id)
    if frequency not in set(Frequency):
        raise InvalidFilter("frequency must be published or weekly")
    before = (subscriber.name, subscriber.topic_names, subscriber.frequency)
    preferences.update(
        session,
        subscriber_id,
        preferences.Choices(
            topics=topics, frequency=frequency, name=name, time_zone=subscriber.time_zone
        ),
        now=now,
    )
    after = (subscriber.name, subscriber.topic_names, subscriber.frequency)
    return [
        label
        for label, old, new in zip(("name", "topics", "frequency"), before, after, strict=True)
        if old != new
    ]
