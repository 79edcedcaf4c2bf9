"""Signing up, confirming, cancelling and leaving: the double opt-in core.

Each function takes a session first and plain values after, flushes but never
commits: the caller commits, then queues the mail whose id it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType

from sqlalchemy import Executable, bindparam, case, delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer import antispam, events, suppression
from mailer.errors import InvalidToken
from mailer.models import (
    Campaign,
    Consent,
    Frequency,
    MailKind,
    MailStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    SuppressionReason,
    Topic,
    TransactionalMail,
)

UNCONFIRMED_LIFETIME = timedelta(days=7)
MAIL_LOG_RETENTION = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SignupRequest:
    """How the signup came in: the consent proof the view collects from the request."""

    ip: str
    user_agent: str
    form: str
    source_url: str
    wording: str


@dataclass(frozen=True, slots=True)
class SignupOutcome:
    """The mail to queue after commit (None: no mail), and why not, for the log."""

    mail_id: int | None
    held_back: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmOutcome:
    newly_confirmed: bool
    welcome_mail_id: int | None = None


def _upsert_subscriber(dialect: ModuleType) -> Executable:
    insert = dialect.insert(Subscriber).values(
        email=bindparam("email"),
        name=bindparam("name"),
        status=SubscriberStatus.PENDING,
        created_at=bindparam("now"),
        last_signup_at=bindparam("now"),
    )
    return insert.on_conflict_do_update(
        index_elements=["email"],
        set_={
            "last_signup_at": insert.excluded.last_signup_at,
            # A pending signup takes the newest name (nobody confirmed the old one
            # either); a confirmed subscriber's name never changes here.
            "name": case(
                (Subscriber.status == SubscriberStatus.PENDING, insert.excluded.name),
                else_=Subscriber.name,
            ),
        },
    ).returning(Subscriber.id, Subscriber.status)


# Built once: constructing statements costs more than executing them on this path.
UPSERT_SUBSCRIBER = {
    "postgresql": _upsert_subscriber(postgresql),
    "sqlite": _upsert_subscriber(sqlite),
}
INSERT_CONSENT = insert(Consent).returning(Consent.id)
INSERT_MAIL = insert(TransactionalMail).returning(TransactionalMail.id)


def _lock_subscriber(session: Session, email: str, name: str, now: datetime) -> tuple[int, str]:
    """Create or refresh the subscriber row, lock it, and return (id, status).

    Concurrent signups for one address queue up here, so the per-address mail
    count that follows is read by one of them at a time: ON CONFLICT DO UPDATE
    takes the row lock on PostgreSQL, and any write takes SQLite's database
    lock. One statement, because this is the hot path of every signup.
    """
    statement = UPSERT_SUBSCRIBER[session.get_bind().dialect.name]
    row = session.execute(statement, {"email": email, "name": name, "now": now}).one()
    return row[0], row[1]


def queue_mail(
    session: Session,
    *,
    subscriber_id: int,
    email: str,
    kind: MailKind,
    now: datetime,
    consent_id: int | None = None,
) -> int:
    """Record a transactional mail to send; return its id for the task."""
    return session.execute(
        INSERT_MAIL,
        {
            "subscriber_id": subscriber_id,
            "consent_id": consent_id,
            "email": email,
            "kind": kind,
            "status": MailStatus.QUEUED,
            "created_at": now,
            "attempts": 0,
            "message_id": "",
            "last_error": "",
        },
    ).scalar_one()


def sign_up(
    session: Session,
    *,
    email: str,
    name: str,
    topics: Sequence[str],
    request: SignupRequest,
    now: datetime,
    frequency: str = Frequency.PUBLISHED,
) -> SignupOutcome:
    """Record a signup and decide which mail, if any, the address gets.

    A confirmed subscriber is never moved back to pending, and their name and
    topics do not change: they get an "already subscribed" mail instead. The
    reader sees the same page whatever happens here.
    """
    subscriber_id, status = _lock_subscriber(session, email, name, now)
    verdict = antispam.check_address_limits(session, email, now=now)
    if verdict.refused:
        return SignupOutcome(None, verdict.reason)
    if status == SubscriberStatus.CONFIRMED:
        return SignupOutcome(
            queue_mail(
                session,
                subscriber_id=subscriber_id,
                email=email,
                kind=MailKind.ALREADY_SUBSCRIBED,
                now=now,
            )
        )

    chosen = [topic.value for topic in Topic if topic.value in set(topics)]
    consent_id = session.execute(
        INSERT_CONSENT,
        {
            "subscriber_id": subscriber_id,
            "requested_at": now,
            "ip": request.ip,
            "user_agent": request.user_agent[:512],
            "form": request.form,
            "source_url": request.source_url[:2048],
            "wording": request.wording,
            "topics": ",".join(chosen),
            "frequency": Frequency(frequency),
        },
    ).scalar_one()
    pending = {"id": subscriber_id, "email": email, "name": name, "status": status}
    events.record(
        session,
        events.SUBSCRIBER_PENDING,
        {**pending, "topics": chosen, "frequency": frequency, "form": request.form},
        now=now,
        subscriber_id=subscriber_id,
    )
    return SignupOutcome(
        queue_mail(
            session,
            subscriber_id=subscriber_id,
            email=email,
            kind=MailKind.CONFIRM,
            now=now,
            consent_id=consent_id,
        )
    )


def open_signup_topics(session: Session, consent_id: int) -> list[str] | None:
    """The topics asked for, while the signup behind a link awaits an answer.

    None once it is answered; InvalidToken when it is gone (purged, or
    cancelled with "this wasn't me").
    """
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise InvalidToken("consent")
    return consent.topic_list if consent.confirmed_at is None else None


def confirm(
    session: Session, consent_id: int, *, ip: str, now: datetime, welcome: bool
) -> ConfirmOutcome:
    """Confirm the signup behind `consent_id`; a replay or a stale link changes nothing."""
    consent = session.get(Consent, consent_id, with_for_update=True)
    if consent is None:  # purged, or cancelled with "this wasn't me"
        raise InvalidToken("confirm")
    subscriber = session.get_one(Subscriber, consent.subscriber_id)
    if consent.confirmed_at is not None or subscriber.status == SubscriberStatus.CONFIRMED:
        return ConfirmOutcome(newly_confirmed=False)

    consent.confirmed_at, consent.confirmed_ip = now, ip
    suppression.lift(session, subscriber.email)  # back after unsubscribing or erasure
    subscriber.status = SubscriberStatus.CONFIRMED
    subscriber.confirmed_at, subscriber.unsubscribed_at = now, None
    subscriber.topics = [SubscriberTopic(topic=topic) for topic in consent.topic_list]
    subscriber.frequency = consent.frequency
    session.flush()
    events.record_subscriber(session, events.SUBSCRIBER_CONFIRMED, subscriber, now=now)
    welcome_id = (
        queue_mail(
            session,
            subscriber_id=subscriber.id,
            email=subscriber.email,
            kind=MailKind.WELCOME,
            now=now,
        )
        if welcome
        else None
    )
    return ConfirmOutcome(newly_confirmed=True, welcome_mail_id=welcome_id)


def cancel_signup(session: Session, consent_id: int, *, now: datetime) -> bool:
    """ "This wasn't me": drop the unconfirmed signup and block further confirmation mail.

    Returns False when there was nothing to cancel (already confirmed, or gone).
    """
    consent = session.get(Consent, consent_id)
    if consent is None or consent.confirmed_at is not None:
        return False
    subscriber = session.get_one(Subscriber, consent.subscriber_id)
    if subscriber.status == SubscriberStatus.CONFIRMED:
        return False
    suppression.suppress(session, subscriber.email, SuppressionReason.NOT_ME, now=now)
    if subscriber.status == SubscriberStatus.PENDING:
        session.delete(subscriber)  # its consents and topics go with it
    else:
        session.delete(consent)
    session.flush()
    return True


def purge_unconfirmed(session: Session, *, now: datetime) -> int:
    """Delete signups left unconfirmed for 7 days, and old mail-log rows; return the count.

    Unconfirmed rows are personal data held without consent: keep them no
    longer than their confirmation link lives.
    """
    purged = session.execute(
        delete(Subscriber).where(
            Subscriber.status == SubscriberStatus.PENDING,
            Subscriber.last_signup_at < now - UNCONFIRMED_LIFETIME,
        )
    ).rowcount
    session.execute(
        delete(TransactionalMail).where(TransactionalMail.created_at < now - MAIL_LOG_RETENTION)
    )
    return purged or 0


def unsubscribe(
    session: Session,
    subscriber_id: int,
    *,
    now: datetime,
    channel: str,
    campaign_id: int | None = None,
) -> bool:
    """Take the subscriber off every list, at once and for every send under way.

    `channel` records how (one-click, page, mailto, admin) for the consent
    record; `campaign_id` which mail it came from, for the campaign report.
    Harmless when repeated (returns False); coming back needs a new opt-in.
    """
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None:
        raise InvalidToken("unsubscribe")
    suppression.suppress(session, subscriber.email, SuppressionReason.UNSUBSCRIBED, now=now)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return False
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at, subscriber.unsubscribe_channel = now, channel
    if campaign_id and session.get(Campaign, campaign_id) is not None:
        subscriber.unsubscribed_campaign_id = campaign_id
    session.flush()
    events.record_subscriber(
        session,
        events.SUBSCRIBER_UNSUBSCRIBED,
        subscriber,
        now=now,
        channel=channel,
        campaign_id=subscriber.unsubscribed_campaign_id,
    )
    return True
