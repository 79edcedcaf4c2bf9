"""Figures for the admin dashboard and campaign reports, each one query or two on indexes.

Unconfirmed signups are deleted after 7 days (subscriptions.purge_unconfirmed),
so older days show only the signups that were confirmed; the confirmation
rate is therefore taken over the last 7 days, where nothing is purged yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Date, cast, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailer.models import (
    Campaign,
    CampaignKind,
    Consent,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)

BOUNCE_REASONS = (SuppressionReason.HARD_BOUNCE, SuppressionReason.SOFT_BOUNCES)
# Naming every status lets the (status, created_at) index serve a range on created_at.
ALL_STATUSES = [status.value for status in SubscriberStatus]
RATE_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SubscriberCounts:
    """Each subscriber in exactly one state; bounced wins over the status column."""

    pending: int
    confirmed: int
    unsubscribed: int
    bounced: int  # address suppressed after a hard bounce or three soft ones

    @property
    def total(self) -> int:
        return self.pending + self.confirmed + self.unsubscribed + self.bounced


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    signups: int  # through the forms (page, embed); imports are counted apart
    confirmations: int  # readers who joined the list: confirmed signups, imports with proof
    imports: int = 0
    unsubscribes: int = 0
    bounces: int = 0  # addresses suppressed after a hard bounce or three soft ones

    @property
    def net(self) -> int:
        """The list's growth that day: who joined, less who left or bounced."""
        return self.confirmations - self.unsubscribes - self.bounces


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    id: int
    subject: str
    status: str
    kind: str  # manual, or which automatic send (published, weekly, reminder)
    created_at: datetime
    send_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    total: int
    sent: int
    failed: int
    bounced: int
    skipped: int
    pending: int
    unsubscribed: int  # readers who left through this campaign's mail


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    email: str
    status: str
    attempts: int
    error: str


def subscriber_counts(session: Session) -> SubscriberCounts:
    """Subscribers by state; the bounced are counted apart from their status."""
    by_status = dict(
        session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
    )
    bounced_by_status = dict(
        session.execute(
            select(Subscriber.status, func.count())
            .join(Suppression, Suppression.email == Subscriber.email)
            .where(Suppression.reason.in_(BOUNCE_REASONS))
            .group_by(Subscriber.status)
        ).all()
    )

    def count(status: str) -> int:
        return by_status.get(status, 0) - bounced_by_status.get(status, 0)

    return SubscriberCounts(
        pending=count(SubscriberStatus.PENDING),
        confirmed=count(SubscriberStatus.CONFIRMED),
        unsubscribed=count(SubscriberStatus.UNSUBSCRIBED),
        bounced=sum(bounced_by_status.values()),
    )


def _first_day(now: datetime, days: int, zone: ZoneInfo) -> tuple[date, datetime]:
    first = now.astimezone(zone).date() - timedelta(days=days - 1)
    return first, datetime.combine(first, time(), tzinfo=zone).astimezone(UTC)


def _per_day(
    session: Session,
    column: InstrumentedAttribute[datetime | None],
    *,
    since: datetime,
    zone: ZoneInfo,
    extra: Sequence = (),
) -> Counter[date]:
    where = [column >= since, *extra]
    if session.get_bind().dialect.name == "postgresql":
        day = cast(func.timezone(zone.key, column), Date)
        rows = session.execute(select(day, func.count()).where(*where).group_by(day)).all()
        return Counter(dict(rows))
    # SQLite (the embedded default) has no time zones: count its few rows here.
    days: Counter[date] = Counter()
    for moment in session.scalars(select(column).where(*where)):
        if moment is not None:
            aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            days[aware.astimezone(zone).date()] += 1
    return days


def _imported():
    """Whether a subscriber came from an import (its consent record says so)."""
    return exists().where(Consent.subscriber_id == Subscriber.id, Consent.form == "import")


def daily_signups(
    session: Session, *, now: datetime, days: int = 90, zone: str = "UTC"
) -> list[DayCount]:
    """Signups, imports, confirmations, unsubscribes and bounces for each of the last `days`
    days, oldest first, days counted in `zone`."""
    tz = ZoneInfo(zone)
    first, since = _first_day(now, days, tz)
    statuses = Subscriber.status.in_(ALL_STATUSES)
    signups = _per_day(
        session, Subscriber.created_at, since=since, zone=tz, extra=[statuses, ~_imported()]
    )
    imports = _per_day(
        session, Subscriber.created_at, since=since, zone=tz, extra=[statuses, _imported()]
    )
    confirmations = _per_day(session, Subscriber.confirmed_at, since=since, zone=tz)
    unsubscribes = _per_day(session, Subscriber.unsubscribed_at, since=since, zone=tz)
    bounces = _per_day(
        session,
        Suppression.created_at,
        since=since,
        zone=tz,
        extra=[Suppression.reason.in_(BOUNCE_REASONS)],
    )
    return [
        DayCount(
            day,
            signups[day],
            confirmations[day],
            imports=imports[day],
            unsubscribes=unsubscribes[day],
            bounces=bounces[day],
        )
        for day in (first + timedelta(days=offset) for offset in range(days))
    ]


def confirmation_rate(session: Session, *, now: datetime) -> float | None:
    """Of the last 7 days' signups through the forms, the share confirmed so far; None without.

    Imports do not count: confirmed at once with a consent proof, they made
    the rate look like 98 %.
    """
    signups, confirmed = session.execute(
        select(func.count(), func.count(Subscriber.confirmed_at)).where(
            Subscriber.status.in_(ALL_STATUSES),
            Subscriber.created_at >= now - RATE_WINDOW,
            ~_imported(),
        )
    ).one()
    return confirmed / signups if signups else None


def campaign_counts(
    session: Session,
    *,
    limit: int = 10,
    before_id: int | None = None,
    hide_empty_automatic: bool = False,
) -> list[CampaignCounts]:
    """The newest campaigns (ids below `before_id`) with their delivery and unsubscribe counts.

    `hide_empty_automatic` leaves out automatic sends that mailed nobody (every
    reader skipped: nothing new for them), which would bury an editor's list.
    """
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if hide_empty_automatic:
        query = query.where(
            (Campaign.kind == CampaignKind.MANUAL)
            | exists().where(
                Delivery.campaign_id == Campaign.id, Delivery.status != DeliveryStatus.SKIPPED
            )
        )
    if before_id is not None:
        query = query.where(Campaign.id < before_id)
    return _with_counts(session, list(session.scalars(query)))


def campaign_report(session: Session, campaign_id: int) -> CampaignCounts | None:
    campaign = session.get(Campaign, campaign_id)
    return _with_counts(session, [campaign])[0] if campaign else None


def _with_counts(session: Session, campaigns: list[Campaign]) -> list[CampaignCounts]:
    ids = [campaign.id for campaign in campaigns]
    if not ids:
        return []
    deliveries: dict[tuple[int, str], int] = {
        (campaign_id, status): count
        for campaign_id, status, count in session.execute(
            select(Delivery.campaign_id, Delivery.status, func.count())
            .where(Delivery.campaign_id.in_(ids))
            .group_by(Delivery.campaign_id, Delivery.status)
        )
    }
    unsubscribed = dict(
        session.execute(
            select(Subscriber.unsubscribed_campaign_id, func.count())
            .where(Subscriber.unsubscribed_campaign_id.in_(ids))
            .group_by(Subscriber.unsubscribed_campaign_id)
        ).all()
    )

    def count(campaign_id: int, *statuses: DeliveryStatus) -> int:
        return sum(deliveries.get((campaign_id, status.value), 0) for status in statuses)

    return [
        CampaignCounts(
            id=campaign.id,
            subject=campaign.subject,
            status=campaign.status,
            kind=campaign.kind,
            created_at=campaign.created_at,
            send_at=campaign.send_at,
            started_at=campaign.started_at,
            finished_at=campaign.finished_at,
            total=count(campaign.id, *DeliveryStatus),
            sent=count(campaign.id, DeliveryStatus.SENT),
            failed=count(campaign.id, DeliveryStatus.FAILED),
            bounced=count(campaign.id, DeliveryStatus.BOUNCED),
            skipped=count(campaign.id, DeliveryStatus.SKIPPED),
            pending=count(campaign.id, DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED),
            unsubscribed=unsubscribed.get(campaign.id, 0),
        )
        for campaign in campaigns
    ]


def failed_deliveries(
    session: Session, campaign_id: int, *, limit: int = 100
) -> list[FailedDelivery]:
    """The failed and bounced deliveries of a campaign, with the relay's last answer."""
    rows = session.execute(
        select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_error)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.status.in_([DeliveryStatus.FAILED, DeliveryStatus.BOUNCED]),
        )
        .order_by(Delivery.id)
        .limit(limit)
    )
    return [FailedDelivery(*row) for row in rows]
