"""Applying a matched report: hard and soft bounces, complaints, mailto unsubscribes.

Soft bounces count "in a row": a soft bounce sets Subscriber.soft_bounces to
one more than before, unless a campaign mail went to the subscriber between
the previous soft-bounced mail and this one without a bounce reported for it;
then the run starts again at 1. The third in a row suppresses the address.
Each mail counts once, however many reports (delayed, then failed) arrive;
a report that names no mail (a webhook event with only an address) just counts.

Each change is written to bounce_event for the console; a report applied
before changes nothing and writes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from mailer import events, subscriptions, suppression, tokens
from mailer.bounces import matching
from mailer.bounces.matching import Target
from mailer.bounces.report import Failure, Kind, Outcome, Report, Severity
from mailer.errors import InvalidToken
from mailer.models import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryStatus,
    MailStatus,
    SuppressionReason,
    TransactionalMail,
)

SOFT_BOUNCES_TO_SUPPRESS = 3
HARD_MARK, SOFT_MARK = "hard bounce", "soft bounce"  # how last_error records a report
UNRECOGNISED_AT_VERP = "a report at our VERP address that no detector understands"
MAX_RAW = 256 * 1024  # of a report kept for the console


def apply(session: Session, report: Report, *, secret_key: tokens.Keys, now: datetime) -> Outcome:
    """Apply one report in the caller's transaction; a report applied before changes nothing."""
    if report.kind is Kind.UNSUBSCRIBE:
        return _unsubscribe(session, report, secret_key=secret_key, now=now)
    target = matching.resolve(session, report, secret_key=secret_key)
    if target is Outcome.FORGED:
        return Outcome.FORGED
    if report.kind in (Kind.AUTO_REPLY, Kind.NO_FAILURE):
        return Outcome.IGNORED
    if isinstance(target, Outcome):
        return target
    if report.kind is Kind.COMPLAINT:
        return _complaint(session, target, report, now)
    if report.kind is Kind.UNRECOGNISED:
        # At our VERP address it is about that mail even if nobody can read it:
        # some MTAs bounce in words no detector knows. Counted soft, so three
        # in a row are needed before the address goes.
        if target.via != "verp":
            return Outcome.UNRECOGNISED
        failure: Failure | None = Failure(target.email, Severity.SOFT, "", UNRECOGNISED_AT_VERP)
    else:
        failure = matching.failure_for(report, target.email)
    if failure is None:
        return Outcome.IGNORED
    if failure.severity is Severity.HARD:
        return _hard(session, target, failure, report, now)
    return _soft(session, target, failure, report, now)


def _record(
    session: Session,
    kind: BounceKind,
    target: Target,
    report: Report,
    now: datetime,
    failure: Failure | None = None,
) -> None:
    subscriber_id = target.subscriber.id if target.subscriber else None
    events.record(
        session,
        events.DELIVERY_COMPLAINT if kind == BounceKind.COMPLAINT else events.DELIVERY_BOUNCED,
        {
            "email": target.email,
            "subscriber_id": subscriber_id,
            "campaign_id": target.campaign_id,
            **({} if kind == BounceKind.COMPLAINT else {"bounce_type": kind.value}),
            "status": failure.status if failure else "",
            "diagnostic": failure.diagnostic if failure else report.diagnostic,
            "source": report.source,
        },
        now=now,
        subscriber_id=subscriber_id,
    )
    session.add(
        BounceEvent(
            at=now,
            kind=kind,
            email=target.email,
            subscriber_id=target.subscriber.id if target.subscriber else None,
            campaign_id=target.campaign_id,
            delivery_id=target.delivery.id if target.delivery else None,
            mail_id=target.mail.id if target.mail else None,
            source=report.source,
            status=failure.status if failure else "",
            diagnostic=failure.diagnostic if failure else report.diagnostic,
            raw=report.raw[:MAX_RAW],
        )
    )


def _unsubscribe(
    session: Session, report: Report, *, secret_key: tokens.Keys, now: datetime
) -> Outcome:
    for subscriber_id, campaign_id in matching.unsubscribe_ids(
        session, report.envelope.unsubscribe_tokens, secret_key
    ):
        try:
            changed = subscriptions.unsubscribe(
                session, subscriber_id, now=now, channel="mailto", campaign_id=campaign_id or None
            )
        except InvalidToken:  # the subscriber was erased meanwhile
            return Outcome.UNMATCHED
        return Outcome.UNSUBSCRIBED if changed else Outcome.DUPLICATE
    return Outcome.FORGED


def _suppress(session: Session, email: str, reason: SuppressionReason, now: datetime) -> bool:
    """Suppress `email`; say whether it was not suppressed before."""
    before = suppression.reason_for(session, email)
    suppression.suppress(session, email, reason, now=now)
    return before is None


def _hard(
    session: Session, target: Target, failure: Failure, report: Report, now: datetime
) -> Outcome:
    changed = False
    note = f"{HARD_MARK}: {failure.diagnostic or failure.status}"
    if target.delivery is not None and target.delivery.status != DeliveryStatus.BOUNCED:
        target.delivery.status, target.delivery.last_error = DeliveryStatus.BOUNCED, note
        changed = True
    if target.mail is not None and not target.mail.last_error.startswith(HARD_MARK):
        target.mail.status, target.mail.last_error = MailStatus.FAILED, note
        changed = True
    changed |= _suppress(session, target.email, SuppressionReason.HARD_BOUNCE, now)
    if not changed:
        return Outcome.DUPLICATE
    _record(session, BounceKind.HARD, target, report, now, failure)
    return Outcome.HARD_BOUNCE


def _soft(
    session: Session, target: Target, failure: Failure, report: Report, now: datetime
) -> Outcome:
    row: Delivery | TransactionalMail | None = target.delivery or target.mail
    if row is not None:
        if row.last_error.startswith((SOFT_MARK, HARD_MARK)) or row.status in (
            DeliveryStatus.BOUNCED,
            MailStatus.FAILED,
        ):
            return Outcome.DUPLICATE  # this mail counted already (a delayed, then a failed DSN)
        row.last_error = f"{SOFT_MARK}: {failure.diagnostic or failure.status}"
    _record(session, BounceKind.SOFT, target, report, now, failure)
    subscriber = target.subscriber
    if subscriber is None:
        return Outcome.SOFT_BOUNCE
    # A report that names no mail of ours (a webhook event with only an address)
    # cannot be placed in the run: it simply counts.
    if row is not None and _run_broken(session, subscriber.id, row.sent_at or now, row):
        subscriber.soft_bounces = 1
    else:
        subscriber.soft_bounces += 1
    if subscriber.soft_bounces >= SOFT_BOUNCES_TO_SUPPRESS:
        _suppress(session, subscriber.email, SuppressionReason.SOFT_BOUNCES, now)
    session.flush()
    return Outcome.SOFT_BOUNCE


def _run_broken(
    session: Session, subscriber_id: int, sent_at: datetime, row: object | None
) -> bool:
    """Did a campaign mail get through between the previous soft-bounced mail and this one?"""
    previous = [
        session.scalar(
            select(func.max(model.sent_at)).where(
                model.subscriber_id == subscriber_id,
                model.last_error.startswith(SOFT_MARK),
                model.sent_at < sent_at,
                model.id != (row.id if isinstance(row, model) else -1),
            )
        )
        for model in (Delivery, TransactionalMail)
    ]
    since = max((moment for moment in previous if moment is not None), default=None)
    went_through = exists().where(
        Delivery.subscriber_id == subscriber_id,
        Delivery.status == DeliveryStatus.SENT,
        ~Delivery.last_error.startswith(SOFT_MARK),
        Delivery.sent_at < sent_at,
        *([Delivery.sent_at > since] if since is not None else []),
    )
    return bool(session.scalar(select(went_through)))


def _complaint(session: Session, target: Target, report: Report, now: datetime) -> Outcome:
    changed = _suppress(session, target.email, SuppressionReason.COMPLAINT, now)
    if target.subscriber is not None:
        changed |= subscriptions.unsubscribe(
            session,
            target.subscriber.id,
            now=now,
            channel="complaint",
            campaign_id=target.campaign_id,
        )
    if not changed:
        return Outcome.DUPLICATE
    _record(session, BounceKind.COMPLAINT, target, report, now)
    return Outcome.COMPLAINT
