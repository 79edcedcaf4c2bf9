"""A subscriber's data: export (GDPR Art. 15/20) and erasure (Art. 17)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from mailer import events, suppression
from mailer.errors import SubscriberNotFound
from mailer.models import (
    BounceEvent,
    Campaign,
    Consent,
    Delivery,
    Subscriber,
    TransactionalMail,
)
from mailer.outbound_webhooks.models import WebhookMessage


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def export_subscriber(session: Session, subscriber_id: int) -> dict:
    """Everything held about the subscriber, JSON-ready."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound(subscriber_id)
    consents = session.scalars(
        select(Consent).where(Consent.subscriber_id == subscriber_id).order_by(Consent.id)
    )
    mails = session.scalars(
        select(TransactionalMail)
        .where(TransactionalMail.subscriber_id == subscriber_id)
        .order_by(TransactionalMail.id)
    )
    deliveries = session.execute(
        select(Delivery, Campaign.subject)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id)
    )
    mine = or_(BounceEvent.subscriber_id == subscriber_id, BounceEvent.email == subscriber.email)
    bounces = session.scalars(select(BounceEvent).where(mine).order_by(BounceEvent.id))
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "topics": subscriber.topic_names,
        "frequency": subscriber.frequency,
        "time_zone": subscriber.time_zone,
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        "unsubscribe_channel": subscriber.unsubscribe_channel,
        "suppressed": suppression.reason_for(session, subscriber.email),
        "consents": [
            {
                "requested_at": _iso(consent.requested_at),
                "ip": consent.ip,
                "user_agent": consent.user_agent,
                "form": consent.form,
                "source_url": consent.source_url,
                "wording": consent.wording,
                "topics": consent.topic_list,
                "confirmed_at": _iso(consent.confirmed_at),
                "confirmed_ip": consent.confirmed_ip,
            }
            for consent in consents
        ],
        "mails": [
            {
                "kind": mail.kind,
                "status": mail.status,
                "created_at": _iso(mail.created_at),
                "sent_at": _iso(mail.sent_at),
            }
            for mail in mails
        ],
        "campaigns": [
            {
                "subject": subject,
                "status": delivery.status,
                "sent_at": _iso(delivery.sent_at),
            }
            for delivery, subject in deliveries
        ],
        "bounces_and_complaints": [
            {
                "at": _iso(event.at),
                "kind": event.kind,
                "status": event.status,
                "diagnostic": event.diagnostic,
                "source": event.source,
            }
            for event in bounces
        ],
    }


def erase_subscriber(session: Session, subscriber_id: int, *, now: datetime) -> None:
    """Remove every piece of personal data; keep only the address's hash, suppressed.

    The hash keeps the address from ever being imported or mailed again; a
    person who later signs up through the form and confirms lifts it.
    """
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None:
        raise SubscriberNotFound(subscriber_id)
    email = subscriber.email
    session.execute(
        delete(TransactionalMail).where(
            or_(TransactionalMail.subscriber_id == subscriber_id, TransactionalMail.email == email)
        )
    )
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))
    # Bounce reports hold the address and what the remote server said about it.
    session.execute(
        delete(BounceEvent).where(
            or_(BounceEvent.subscriber_id == subscriber_id, BounceEvent.email == email)
        )
    )
    # What earlier events said of them (address, name) goes too, sent or not.
    session.execute(delete(WebhookMessage).where(WebhookMessage.subscriber_id == subscriber_id))
    session.delete(subscriber)  # its topics and consents go with it
    session.flush()
    suppression.forget_address(session, email, now=now)
    # Only the id: a CRM that heard of them by id erases them too (GDPR Art. 19).
    events.record(session, events.SUBSCRIBER_ERASED, {"id": subscriber_id}, now=now)


def forget_outbox_mail(transport: object, email: str) -> int:
    """Delete the outbox's copies of every mail that names `email`; return how many.

    Only the embedded default keeps copies (`MAILER_SMTP_URL=outbox:`, shown in
    the console's Outbox); a real relay's transport has no directory and
    nothing is done here. A mail names the address in its envelope, its To
    header, or its text (a change-of-address notice names both addresses).
    """
    directory = getattr(transport, "directory", None)
    if not isinstance(directory, Path) or not directory.is_dir():
        return 0
    needle = email.lower().encode()
    removed = 0
    for path in directory.glob("*.eml"):
        if needle in path.read_bytes().lower():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def find_subscriber(session: Session, email: str) -> int:
    """The id of the subscriber with this (normalised) address."""
    subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    if subscriber_id is None:
        raise SubscriberNotFound(email)
    return subscriber_id
