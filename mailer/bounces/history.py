"""The bounce and complaint ledger, read for the console: the list, the raw report, rates.

Rates are taken over the mails a campaign got out (sent, and bounced after
being accepted): Gmail and Yahoo ask bulk senders to keep hard bounces under
2 % and spam complaints under 0.1 % (Yahoo's stated limit is 0.3 %; 0.1 % is
where Gmail starts to look), so the console warns past those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.models import BounceEvent, BounceKind, Campaign, Delivery, DeliveryStatus

HARD_BOUNCE_LIMIT = 0.02
COMPLAINT_LIMIT = 0.001


@dataclass(frozen=True, slots=True)
class BounceRow:
    id: int
    at: datetime
    kind: str
    email: str
    campaign_id: int | None
    campaign_subject: str
    status: str
    diagnostic: str
    source: str
    has_raw: bool


@dataclass(frozen=True, slots=True)
class Rates:
    """A campaign's bounces and complaints against the mails it got out."""

    delivered: int  # accepted by the relay: sent, or bounced afterwards
    hard: int
    soft: int
    complaints: int

    @property
    def hard_rate(self) -> float:
        return self.hard / self.delivered if self.delivered else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0

    @property
    def too_many_bounces(self) -> bool:
        return self.hard_rate > HARD_BOUNCE_LIMIT

    @property
    def too_many_complaints(self) -> bool:
        return self.complaint_rate > COMPLAINT_LIMIT


def events(
    session: Session, *, kind: str = "", before_id: int | None = None, limit: int = 100
) -> list[BounceRow]:
    """The newest events (ids below `before_id`), of one kind or all."""
    query = (
        select(
            BounceEvent.id,
            BounceEvent.at,
            BounceEvent.kind,
            BounceEvent.email,
            BounceEvent.campaign_id,
            func.coalesce(Campaign.subject, ""),
            BounceEvent.status,
            BounceEvent.diagnostic,
            BounceEvent.source,
            BounceEvent.raw != "",
        )
        .outerjoin(Campaign, Campaign.id == BounceEvent.campaign_id)
        .order_by(BounceEvent.id.desc())
        .limit(limit)
    )
    if kind in set(BounceKind):
        query = query.where(BounceEvent.kind == kind)
    if before_id is not None:
        query = query.where(BounceEvent.id < before_id)
    return [BounceRow(*row) for row in session.execute(query)]


def raw_report(session: Session, event_id: int) -> BounceEvent | None:
    return session.get(BounceEvent, event_id)


def rates(session: Session, campaign_ids: Sequence[int]) -> dict[int, Rates]:
    """Rates of each campaign in `campaign_ids` (two grouped queries on indexes)."""
    if not campaign_ids:
        return {}
    delivered = dict(
        session.execute(
            select(Delivery.campaign_id, func.count())
            .where(
                Delivery.campaign_id.in_(campaign_ids),
                Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.BOUNCED]),
            )
            .group_by(Delivery.campaign_id)
        ).all()
    )
    counted: dict[tuple[int, str], int] = {
        (campaign_id, kind): count
        for campaign_id, kind, count in session.execute(
            select(BounceEvent.campaign_id, BounceEvent.kind, func.count())
            .where(BounceEvent.campaign_id.in_(campaign_ids))
            .group_by(BounceEvent.campaign_id, BounceEvent.kind)
        )
    }
    return {
        campaign_id: Rates(
            delivered=delivered.get(campaign_id, 0),
            hard=counted.get((campaign_id, BounceKind.HARD), 0),
            soft=counted.get((campaign_id, BounceKind.SOFT), 0),
            complaints=counted.get((campaign_id, BounceKind.COMPLAINT), 0),
        )
        for campaign_id in campaign_ids
    }


@dataclass(frozen=True, slots=True)
class Warning:
    campaign_id: int
    subject: str
    rates: Rates


def warnings(session: Session, *, recent: int = 10) -> list[Warning]:
    """The recent campaigns whose hard-bounce or complaint rate is past the limit."""
    campaigns = session.execute(
        select(Campaign.id, Campaign.subject).order_by(Campaign.id.desc()).limit(recent)
    ).all()
    found = rates(session, [campaign_id for campaign_id, _ in campaigns])
    return [
        Warning(campaign_id, subject, found[campaign_id])
        for campaign_id, subject in campaigns
        if found[campaign_id].too_many_bounces or found[campaign_id].too_many_complaints
    ]
