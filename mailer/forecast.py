"""When each new notice goes out by itself, and to how many readers: the notice list's column.

A forecast, read from the same facts the planners use (mailer.automatic):
the open "as published" window and its end, the next weekly digest, and
the readers of the notice's topic on each frequency. Planning itself may
still find that a reader had the notice already (an editor's campaign).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from mailer.automatic import ARCHIVE_AGE, STATE_ID, Schedule, digest_week
from mailer.models import (
    AutomaticSending,
    Campaign,
    CampaignKind,
    CampaignNotice,
    Delivery,
    DeliveryStatus,
    Notice,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
)


@dataclass(frozen=True, slots=True)
class Forecast:
    """What automatic sending does with one notice."""

    # "due" (will go out), "sent", "paused", "waiting" (no postal address), "archive",
    # "review" (a feed's notice held until someone approves it)
    state: str
    published_at: datetime | None = None  # the "as published" mail: when (UTC)
    published_readers: int = 0
    weekly_at: datetime | None = None  # the next weekly digest, in the site's zone (UTC)
    weekly_readers: int = 0
    sent_readers: int = 0  # state "sent": how many got the as-published mail


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _readers_by_topic(session: Session) -> dict[tuple[str, str], int]:
    """Confirmed, unsuppressed readers per (topic, frequency)."""
    rows = session.execute(
        select(SubscriberTopic.topic, Subscriber.frequency, func.count())
        .join(Subscriber, Subscriber.id == SubscriberTopic.subscriber_id)
        .where(
            Subscriber.status == SubscriberStatus.CONFIRMED,
            ~exists().where(Suppression.email == Subscriber.email),
        )
        .group_by(SubscriberTopic.topic, Subscriber.frequency)
    )
    return {(topic, frequency): count for topic, frequency, count in rows}


def _sent(session: Session, notice_ids: Sequence[int]) -> dict[int, int]:
    """Notices already in an "as published" mail: readers planned for that mail."""
    rows = session.execute(
        select(CampaignNotice.notice_id, func.count(Delivery.id))
        .join(Campaign, Campaign.id == CampaignNotice.campaign_id)
        .outerjoin(
            Delivery,
            (Delivery.campaign_id == Campaign.id) & (Delivery.status != DeliveryStatus.SKIPPED),
        )
        .where(CampaignNotice.notice_id.in_(list(notice_ids)))
        .where(Campaign.kind == CampaignKind.PUBLISHED)
        .group_by(CampaignNotice.notice_id)
    )
    return dict(rows.all())


def next_weekly(schedule: Schedule, *, now: datetime) -> datetime:
    """The next weekly digest's moment in the site's own zone."""
    zone = ZoneInfo(schedule.site_time_zone)
    _week, moment = digest_week(now, zone, schedule)
    return moment if moment > now else _utc(moment) + timedelta(days=7)


def forecast(
    session: Session,
    notices: Sequence[Notice],
    schedule: Schedule,
    *,
    ready: bool,
    now: datetime,
) -> dict[int, Forecast]:
    """Each notice's forecast, by id."""
    state = session.get(AutomaticSending, STATE_ID)
    cursor = max(
        (_utc(t) for t in (state.published_until, state.notices_since) if t) if state else (),
        default=None,
    )
    window_opened = session.scalar(
        select(func.min(Notice.created_at)).where(
            Notice.created_at >= cursor if cursor else Notice.id.is_not(None)
        )
    )
    readers = _readers_by_topic(session)
    sent = _sent(session, [notice.id for notice in notices])
    weekly_at = next_weekly(schedule, now=now)
    result = {}
    for notice in notices:
        if notice.id in sent:
            result[notice.id] = Forecast("sent", sent_readers=sent[notice.id])
        elif getattr(notice, "held_for_review", False):
            result[notice.id] = Forecast("review")  # a feed's notice waiting for approval
        elif _utc(notice.published_at) < _utc(notice.created_at) - ARCHIVE_AGE or (
            state and state.notices_since and _utc(notice.created_at) < _utc(state.notices_since)
        ):
            result[notice.id] = Forecast("archive")
        else:
            due = (
                _utc(window_opened) + schedule.publish_window
                if window_opened and (cursor is None or _utc(notice.created_at) >= cursor)
                else None
            )
            kind = "paused" if state and state.paused else "due" if ready else "waiting"
            result[notice.id] = Forecast(
                kind,
                published_at=max(due, now) if due else None,
                published_readers=readers.get((notice.kind, "published"), 0),
                weekly_at=weekly_at,
                weekly_readers=readers.get((notice.kind, "weekly"), 0),
            )
    return result
