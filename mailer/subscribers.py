"""Subscribers managed by another system (a CMS through the API), through the domain's own paths.

Adding with a consent proof is the CSV import's `--consent-proof` for one row
(confirmed at once, the proof kept as the consent record); adding without is
a signup (pending, a confirmation mail under the same per-address limits).
Changes go through the preferences' update, leaving through unsubscribe, so
each is recorded and announced as if the reader had done it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import imports, preferences, subscriptions, suppression, time_zones
from mailer.errors import AddressLimited, SubscriberConflict, SubscriberNotFound, SubscriberRefused
from mailer.models import Frequency, Subscriber, SubscriberStatus
from mailer.stats import BOUNCE_REASONS

# Import rejections that are about the address's standing, not the values given.
CONFLICTS = {"suppressed", "subscriber", "duplicate"}


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    email: str  # normalised (mailer.addresses)
    name: str
    topics: Sequence[str]
    frequency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", clean_name(self.name))


def clean_name(name: str) -> str:
    """The name, trimmed; SubscriberRefused for one no mail header should carry."""
    name = name.strip()
    if len(name) > imports.MAX_NAME:
        raise SubscriberRefused(f"name longer than {imports.MAX_NAME} characters")
    # Line breaks and other controls in a name are how header injection starts.
    if any(unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs"} for char in name):
        raise SubscriberRefused("name contains line breaks or control characters")
    return name


def add_with_consent(
    session: Session, new: NewSubscriber, *, proof: str, actor: str, now: datetime
) -> int:
    """A confirmed subscriber at once, `proof` kept as their consent; return the id.

    Refused (SubscriberConflict) for an address that is a subscriber already
    or suppressed: someone who left comes back only by confirming themselves.
    """
    options = imports.ImportOptions(
        actor=actor,
        source="api",
        default_topics=tuple(new.topics),
        consent_proof=proof,
        frequency=Frequency(new.frequency),
    )
    row = imports.CsvRow(1, new.email, new.name, "", surplus=False)
    outcome = imports.import_chunk(session, [row], options, now=now).outcomes[0]
    if not outcome.imported:
        error = SubscriberConflict if outcome.kind in CONFLICTS else SubscriberRefused
        raise error(outcome.reason)
    return session.scalars(select(Subscriber.id).where(Subscriber.email == outcome.email)).one()


def add_pending(
    session: Session, new: NewSubscriber, *, request: subscriptions.SignupRequest, now: datetime
) -> tuple[int, int]:
    """A signup: pending, with a confirmation mail; return (subscriber id, mail id).

    The address must be normalised already. A confirmed subscriber is a
    conflict (no "already subscribed" mail: the caller knows); an address
    over its per-address limits raises AddressLimited.
    """
    existing = session.scalar(select(Subscriber.status).where(Subscriber.email == new.email))
    if existing == SubscriberStatus.CONFIRMED:
        raise SubscriberConflict("already a confirmed subscriber")
    outcome = subscriptions.sign_up(
        session,
        email=new.email,
        name=new.name,
        topics=new.topics,
        request=request,
        now=now,
        frequency=new.frequency,
    )
    subscriber_id = session.scalars(
        select(Subscriber.id).where(Subscriber.email == new.email)
    ).one()
    if outcome.mail_id is None:
        raise AddressLimited(outcome.held_back or "the address cannot be mailed now")
    return subscriber_id, outcome.mail_id


def get(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound(subscriber_id)
    return subscriber


def state_of(session: Session, subscriber: Subscriber) -> str:
    """The state the console shows: a subscriber whose address bounced is "bounced"."""
    reason = suppression.reason_for(session, subscriber.email)
    return "bounced" if reason in BOUNCE_REASONS else subscriber.status


def change(
    session: Session,
    subscriber_id: int,
    *,
    name: str | None = None,
    topics: Sequence[str] | None = None,
    frequency: str | None = None,
    time_zone: str | None = None,
    now: datetime,
) -> None:
    """Change what a confirmed subscriber hears and how often; what is None stays."""
    subscriber = get(session, subscriber_id)
    if subscriber.status != SubscriberStatus.CONFIRMED:
        raise SubscriberConflict(
            f"only a confirmed subscriber can change; this one is {subscriber.status}"
        )
    if time_zone and not time_zones.canonical(time_zone):
        raise SubscriberRefused(f"time_zone {time_zone[:64]!r} is not an IANA zone")
    preferences.update(
        session,
        subscriber_id,
        preferences.Choices(
            topics=subscriber.topic_names if topics is None else topics,
            frequency=subscriber.frequency if frequency is None else frequency,
            name=subscriber.name if name is None else clean_name(name),
            time_zone=subscriber.time_zone if time_zone is None else time_zone,
        ),
        now=now,
    )
