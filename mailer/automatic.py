"""Automatic sends: notices as published, the weekly digest, webinar reminders, the pause switch.

Each automatic send is an ordinary campaign with a kind and a unique slot
("published:<window start>", "weekly:2026-W48", "reminder:<notice id>"),
planned by the beat and sent through the same Delivery pipeline as an
editor's campaign, so the admin console shows and controls it like any other.

Idempotent by construction: every planner runs under a row lock on the one
`automatic_sending` row, a slot names each automatic campaign once, and the
unique (campaign, subscriber) pair of Delivery allows one row per reader. A
beat tick delivered twice, or run again after a crash, finds its work done.

Which notices a reader gets is chosen per reader when planning and kept on
their Delivery row: the notices of their topics created since their last
automatic mail (that row's `notices_until`), minus any already sent to them
in any campaign. So a reader who changes frequency mid-week, or who also got
an editor's campaign, gets each notice exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, exists, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from mailer import campaigns, events
from mailer.models import (
    AutomaticSending,
    Campaign,
    CampaignKind,
    CampaignNotice,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Frequency,
    Notice,
    NoticeKind,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    Topic,
)
from mailer.sending.compose import topic_phrase
from mailer.sending.digest import KIND_LABELS
from mailer.settings import WEEKDAYS, Settings

ALL_TOPICS = ",".join(topic.value for topic in Topic)
# A notice in a row in these states has reached the reader, or is on its way.
RECEIVED = (
    DeliveryStatus.QUEUED,
    DeliveryStatus.CLAIMED,
    DeliveryStatus.SENT,
    DeliveryStatus.BOUNCED,
)
NOTHING_NEW = "nothing new since the last mail"
ARCHIVE_AGE = timedelta(days=7)  # published this long before it reached mailer: not news
STATE_ID = 1
PLAN_ROWS = text(
    "INSERT INTO delivery (campaign_id, subscriber_id, status, attempts, message_id, last_error,"
    " notice_ids, notices_until) SELECT :campaign_id, row.subscriber_id, row.status, 0, '',"
    " row.last_error, row.notice_ids, :notices_until FROM unnest(CAST(:subscriber_id AS int[]),"
    " CAST(:status AS text[]), CAST(:last_error AS text[]), CAST(:notice_ids AS text[]))"
    " AS row(subscriber_id, status, last_error, notice_ids)"
    " ON CONFLICT (campaign_id, subscriber_id) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When automatic sends go out; from the MAILER_* settings."""

    publish_window: timedelta = timedelta(minutes=15)
    digest_weekday: int = 0  # Monday, as date.weekday() counts
    digest_hour: int = 8
    reminder_before: timedelta = timedelta(hours=24)
    site_time_zone: str = "UTC"
    site_name: str = "Health Notices"

    @classmethod
    def from_settings(cls, settings: Settings) -> Schedule:
        return cls(
            publish_window=timedelta(minutes=settings.publish_window_minutes),
            digest_weekday=WEEKDAYS.index(settings.digest_weekday),
            digest_hour=settings.digest_hour,
            reminder_before=timedelta(hours=settings.reminder_hours),
            site_time_zone=settings.site_time_zone,
            site_name=settings.site_name,
        )


@dataclass(frozen=True, slots=True)
class Status:
    """The switch, and the latest automatic campaigns with their counts."""

    paused: bool
    changed_at: datetime | None
    changed_by: str
    campaigns: list[dict[str, object]]

    def as_dict(self) -> dict[str, object]:
        return {
            "paused": self.paused,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "changed_by": self.changed_by,
            "campaigns": self.campaigns,
        }


def _news(notice: Row) -> bool:
    """Whether a notice is news, not an old entry a feed brought in when it was added.

    Notices are timed by when mailer received them (created_at), so a late
    import is still announced; one published long before that is archive.
    """
    return notice.published_at >= notice.created_at - ARCHIVE_AGE


def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _state(session: Session) -> AutomaticSending:
    """The switch row, locked until commit: planners, pause and resume take turns."""
    session.execute(
        _insert(session)(AutomaticSending)
        .values(id=STATE_ID, paused=False, changed_by="", held_campaign_ids="")
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return session.get_one(AutomaticSending, STATE_ID, with_for_update=True, populate_existing=True)


# --- choosing each reader's notices -------------------------------------------------


def _owed(
    session: Session, audience: Select, *, cutoff: datetime, floor: datetime | None
) -> dict[int, list[int]]:
    """Each reader's notices for their next mail, by subscriber id (an empty list: none).

    Of their topics, created from their last automatic mail (or their
    confirmation) up to `cutoff`, not yet sent to them in any campaign, and no
    webinar that has started already.
    """
    # Where each reader's last automatic mail left off: one probe of
    # ix_delivery_reader_notices per reader, however long their history. A
    # failed mail does not count (its notices are still owed); a skipped one
    # does (nothing was new, the reader left the topic, or an editor cancelled).
    last_mail = (
        select(Delivery.notices_until)
        .where(
            Delivery.subscriber_id == Subscriber.id,
            Delivery.notices_until.is_not(None),
            Delivery.status.in_([*RECEIVED, DeliveryStatus.SKIPPED]),
        )
        .order_by(Delivery.notices_until.desc())
        .limit(1)
        .scalar_subquery()
    )
    since = {
        subscriber_id: max(moment for moment in (joined_at, floor, last) if moment)
        for subscriber_id, joined_at, last in session.execute(
            audience.add_columns(
                func.coalesce(Subscriber.confirmed_at, Subscriber.created_at), last_mail
            )
        )
    }
    if not since:
        return {}
    topics: dict[int, set[str]] = defaultdict(set)
    for subscriber_id, topic in session.execute(
        select(SubscriberTopic.subscriber_id, SubscriberTopic.topic).where(
            SubscriberTopic.subscriber_id.in_(audience)
        )
    ):
        topics[subscriber_id].add(topic)
    notices = [
        notice
        for notice in session.execute(
            select(Notice.id, Notice.kind, Notice.created_at, Notice.published_at)
            .where(
                Notice.created_at >= min(since.values()),
                Notice.created_at < cutoff,
                (Notice.kind != NoticeKind.WEBINAR) | (Notice.starts_at >= cutoff),
                Notice.held_for_review.is_(False),  # from a reviewed feed, not yet approved
            )
            .order_by(Notice.created_at, Notice.id)
        )
        if _news(notice)
    ]
    kinds = {notice.id: notice.kind for notice in notices}
    sent: dict[int, set[int]] = defaultdict(set)
    if notices:
        for subscriber_id, chosen, notice_id, campaign_topics in session.execute(
            select(
                Delivery.subscriber_id,
                Delivery.notice_ids,
                CampaignNotice.notice_id,
                Campaign.topics,
            )
            .join(CampaignNotice, CampaignNotice.campaign_id == Delivery.campaign_id)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(
                Delivery.subscriber_id.in_(audience),
                Delivery.status.in_(RECEIVED),
                CampaignNotice.notice_id.in_(list(kinds)),
                # A reminder is not the announcement: the notice itself is still owed.
                Campaign.kind != CampaignKind.REMINDER,
            )
        ):
            if (
                str(notice_id) in chosen.split(",")
                if chosen
                else kinds[notice_id] in campaign_topics.split(",")
            ):
                sent[subscriber_id].add(notice_id)
    return {
        subscriber_id: [
            notice.id
            for notice in notices
            if notice.kind in topics[subscriber_id]
            and notice.created_at >= since[subscriber_id]
            and notice.id not in sent[subscriber_id]
        ]
        for subscriber_id in since
    }


def _fill(
    session: Session, campaign: Campaign, owed: dict[int, list[int]], *, cutoff: datetime
) -> int:
    """Plan one Delivery per reader (skipped when nothing is owed); return how many are queued."""
    rows = [
        {
            "campaign_id": campaign.id,
            "subscriber_id": subscriber_id,
            "status": DeliveryStatus.QUEUED if notice_ids else DeliveryStatus.SKIPPED,
            "attempts": 0,
            "message_id": "",
            "last_error": "" if notice_ids else NOTHING_NEW,
            "notice_ids": ",".join(map(str, notice_ids)),
            "notices_until": cutoff,
        }
        for subscriber_id, notice_ids in owed.items()
    ]
    if rows and session.get_bind().dialect.name == "postgresql":
        # One statement, the rows as four arrays: 3x faster than executemany
        # (100,000 rows in 1.0 s against 2.4 s, measured).
        session.execute(
            PLAN_ROWS,
            {
                "campaign_id": campaign.id,
                "notices_until": cutoff,
                **{
                    column: [row[column] for row in rows]
                    for column in ("subscriber_id", "status", "last_error", "notice_ids")
                },
            },
        )
    elif rows:
        session.execute(
            sqlite.insert(Delivery).on_conflict_do_nothing(
                index_elements=["campaign_id", "subscriber_id"]
            ),
            rows,
        )
    # The campaign lists every notice any reader gets: the renderer and the
    # console read them from there, in the order they were created.
    have = set(
        session.scalars(
            select(CampaignNotice.notice_id).where(CampaignNotice.campaign_id == campaign.id)
        )
    )
    wanted = {notice_id for notice_ids in owed.values() for notice_id in notice_ids} - have
    if wanted:
        session.add_all(
            CampaignNotice(campaign_id=campaign.id, notice_id=notice_id, position=position)
            for position, notice_id in enumerate(sorted(wanted), start=len(have))
        )
    session.flush()
    return sum(1 for notice_ids in owed.values() if notice_ids)


def _new_campaign(
    session: Session, *, kind: CampaignKind, slot: str, subject: str, intro: str, now: datetime
) -> Campaign:
    campaign = Campaign(
        kind=kind,
        slot=slot,
        subject=subject[:200],
        intro=intro,
        topics=ALL_TOPICS,
        status=CampaignStatus.SENDING,
        created_at=now,
        started_at=now,
    )
    session.add(campaign)
    session.flush()
    events.record_campaigns(session, events.CAMPAIGN_STARTED, [campaign.id], now=now)
    return campaign


def _settle(session: Session, campaign: Campaign, queued: int, *, now: datetime) -> list[int]:
    """The campaign's id if workers must start on it; with nothing left to send, finish it."""
    # Read again, locked, after the rows went in: a worker may have finished the
    # campaign meanwhile, having found nothing queued before these rows were
    # committed (ledger.record_outcomes locks the same row before it finishes one).
    # On SQLite the inserts already hold the one write lock, so this read is current.
    session.flush()
    session.refresh(campaign, with_for_update=True)
    if queued and campaign.status == CampaignStatus.FINISHED:
        # A weekly digest reopens when a later time zone's readers come due.
        campaign.status, campaign.finished_at = CampaignStatus.SENDING, None
    if campaign.status != CampaignStatus.SENDING:
        return []  # paused by an editor or by the global pause: the rows wait
    if queued:
        return [campaign.id]
    pending = session.scalar(
        select(
            exists().where(
                Delivery.campaign_id == campaign.id,
                Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED]),
            )
        )
    )
    if not pending:
        campaign.status, campaign.finished_at = CampaignStatus.FINISHED, now
        session.flush()
        events.record_campaigns(session, events.CAMPAIGN_FINISHED, [campaign.id], now=now)
    return []


def _readers(*conditions: ColumnElement[bool]) -> Select:
    """Confirmed readers with at least one topic whose address is not suppressed."""
    return select(Subscriber.id).where(
        Subscriber.status == SubscriberStatus.CONFIRMED,
        exists().where(SubscriberTopic.subscriber_id == Subscriber.id),
        ~exists().where(Suppression.email == Subscriber.email),
        *conditions,
    )


# --- the three planners --------------------------------------------------------------


def plan_published(session: Session, schedule: Schedule, *, now: datetime) -> list[int]:
    """Close the publishing window if its time is up: one mail with all its notices.

    The first notice after the last window opens the next one; when
    `publish_window` has passed, every notice created so far goes out in one
    campaign to the readers on "as published" of their topics. Returns the
    campaign ids to start sending.
    """
    state = _state(session)
    if state.paused:
        return []
    cursor = max((t for t in (state.published_until, state.notices_since) if t), default=None)
    query = select(Notice.created_at).where(
        Notice.created_at < now, Notice.held_for_review.is_(False)
    )
    if cursor is not None:
        query = query.where(Notice.created_at >= cursor)
    opened = session.scalar(query.order_by(Notice.created_at).limit(1))
    if opened is None or opened + schedule.publish_window > now:
        return []
    start = opened
    window = [
        notice
        for notice in session.execute(
            select(Notice.kind, Notice.title, Notice.published_at, Notice.created_at)
            .where(
                Notice.created_at >= start,
                Notice.created_at < now,
                Notice.held_for_review.is_(False),
            )
            .order_by(Notice.created_at, Notice.id)
        )
        if _news(notice)
    ]
    state.published_until = now
    if not window:
        return []  # only old entries of a feed just added: nothing to announce
    kinds = [topic.value for topic in Topic if topic.value in {notice.kind for notice in window}]
    audience = _readers(
        Subscriber.frequency == Frequency.PUBLISHED,
        exists().where(
            SubscriberTopic.subscriber_id == Subscriber.id, SubscriberTopic.topic.in_(kinds)
        ),
    )
    owed = _owed(session, audience, cutoff=now, floor=state.notices_since)
    if not owed:
        return []
    if len(window) == 1:
        subject = f"{KIND_LABELS[window[0].kind]}: {window[0].title}"
    else:
        subject = f"{schedule.site_name}: new {topic_phrase(kinds)}"
    campaign = _new_campaign(
        session,
        kind=CampaignKind.PUBLISHED,
        slot=f"published:{start.isoformat()}",
        subject=subject,
        intro="",
        now=now,
    )
    return _settle(session, campaign, _fill(session, campaign, owed, cutoff=now), now=now)


def digest_week(now: datetime, zone: ZoneInfo, schedule: Schedule) -> tuple[str, datetime]:
    """The ISO week local to `zone` at `now`, and that week's digest moment (in UTC)."""
    year, week, _ = now.astimezone(zone).isocalendar()
    day = date.fromisocalendar(year, week, schedule.digest_weekday + 1)
    moment = datetime.combine(day, time(schedule.digest_hour), tzinfo=zone)
    return f"{year}-W{week:02d}", moment.astimezone(UTC)


def _zone(name: str, site_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or site_zone)
    except (KeyError, ValueError):
        return ZoneInfo(site_zone)


def plan_weekly(session: Session, schedule: Schedule, *, now: datetime) -> list[int]:
    """Plan this week's digest for the weekly readers whose local digest hour has come.

    One campaign per ISO week; readers are added as their time zone reaches the
    hour. A reader who confirmed after this week's moment waits for next week.
    Returns the campaign ids to start sending.
    """
    state = _state(session)
    if state.paused:
        return []
    names = session.scalars(
        select(Subscriber.time_zone)
        .distinct()
        .where(
            Subscriber.status == SubscriberStatus.CONFIRMED,
            Subscriber.frequency == Frequency.WEEKLY,
        )
    ).all()
    due: dict[str, dict[datetime, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name in names:
        week, moment = digest_week(now, _zone(name, schedule.site_time_zone), schedule)
        if moment <= now:
            due[week][moment].append(name)
    joined_at = func.coalesce(Subscriber.confirmed_at, Subscriber.created_at)
    started: list[int] = []
    for week, moments in sorted(due.items()):
        slot = f"weekly:{week}"
        campaign = session.scalar(select(Campaign).where(Campaign.slot == slot))
        if campaign is not None and campaign.status == CampaignStatus.CANCELLED:
            continue  # an editor stopped this week's digest for good
        audience = _readers(
            Subscriber.frequency == Frequency.WEEKLY,
            or_(
                *(
                    Subscriber.time_zone.in_(zones) & (joined_at < moment)
                    for moment, zones in moments.items()
                )
            ),
        )
        if campaign is not None:
            audience = audience.where(
                ~exists().where(
                    Delivery.campaign_id == campaign.id, Delivery.subscriber_id == Subscriber.id
                )
            )
        owed = _owed(session, audience, cutoff=now, floor=state.notices_since)
        if not owed:
            continue
        if campaign is None:
            campaign = _new_campaign(
                session,
                kind=CampaignKind.WEEKLY,
                slot=slot,
                subject=f"{schedule.site_name}: your weekly digest",
                intro="Here is what is new since your last digest.",
                now=now,
            )
        started += _settle(session, campaign, _fill(session, campaign, owed, cutoff=now), now=now)
    return started


def plan_reminders(session: Session, schedule: Schedule, *, now: datetime) -> list[int]:
    """Remind the webinar readers of each webinar starting within `reminder_before`, once.

    A webinar announced later than that gets no reminder: its announcement is
    the reminder. Returns the campaign ids to start sending.
    """
    state = _state(session)
    if state.paused:
        return []
    webinars = session.scalars(
        select(Notice).where(
            Notice.kind == NoticeKind.WEBINAR,
            Notice.starts_at > now,
            Notice.starts_at <= now + schedule.reminder_before,
            Notice.held_for_review.is_(False),
        )
    ).all()
    started: list[int] = []
    for notice in webinars:
        if notice.starts_at is None:  # excluded by the query; narrows the type
            continue
        slot = f"reminder:{notice.id}"
        announced_late = notice.created_at > notice.starts_at - schedule.reminder_before
        if announced_late or session.scalar(select(Campaign.id).where(Campaign.slot == slot)):
            continue
        hours = round(schedule.reminder_before.total_seconds() / 3600)
        campaign_id = campaigns.create_campaign(
            session,
            subject=f"Reminder: {notice.title}",
            notice_ids=[notice.id],
            topics=[Topic.WEBINAR],
            intro=f"A reminder: this webinar starts in about {hours} hours.",
            now=now,
        )
        campaign = session.get_one(Campaign, campaign_id)
        campaign.kind, campaign.slot = CampaignKind.REMINDER, slot
        recipients = campaigns.start_campaign(session, campaign_id, now=now)
        started += _settle(session, campaign, recipients, now=now)
    return started


def plan_due(session: Session, schedule: Schedule, *, now: datetime) -> list[int]:
    """Everything automatic that is due at `now`; the caller commits, then starts the ids."""
    return (
        plan_published(session, schedule, now=now)
        + plan_weekly(session, schedule, now=now)
        + plan_reminders(session, schedule, now=now)
    )


# --- the switch ----------------------------------------------------------------------


def pause(session: Session, *, now: datetime, by: str) -> Status:
    """Stop automatic sending: no new plans, and the automatic campaigns sending now pause."""
    state = _state(session)
    if not state.paused:
        held = session.scalars(
            update(Campaign)
            .where(Campaign.kind != CampaignKind.MANUAL, Campaign.status == CampaignStatus.SENDING)
            .values(status=CampaignStatus.PAUSED)
            .returning(Campaign.id)
        ).all()
        state.paused, state.held_campaign_ids = True, ",".join(map(str, sorted(held)))
        events.record_campaigns(session, events.CAMPAIGN_PAUSED, held, now=now)
        state.changed_at, state.changed_by = now, by
    session.flush()
    return status(session)


def resume(session: Session, *, now: datetime, by: str) -> list[int]:
    """Start automatic sending again; return the campaigns the pause held (start them).

    A campaign an editor paused by itself stays paused.
    """
    state = _state(session)
    resumed: list[int] = []
    if state.paused:
        held = [int(part) for part in state.held_campaign_ids.split(",") if part]
        if held:
            resumed = list(
                session.scalars(
                    update(Campaign)
                    .where(Campaign.id.in_(held), Campaign.status == CampaignStatus.PAUSED)
                    .values(status=CampaignStatus.SENDING)
                    .returning(Campaign.id)
                )
            )
        state.paused, state.held_campaign_ids = False, ""
        state.changed_at, state.changed_by = now, by
    session.flush()
    return sorted(resumed)


def status(session: Session, *, latest: int = 10) -> Status:
    """Whether automatic sending is paused, and the latest automatic campaigns."""
    state = session.get(AutomaticSending, STATE_ID)
    recent = session.execute(
        select(Campaign.id, Campaign.kind, Campaign.slot, Campaign.subject, Campaign.status)
        .where(Campaign.kind != CampaignKind.MANUAL)
        .order_by(Campaign.id.desc())
        .limit(latest)
    ).all()
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for campaign_id, delivery_status, count in session.execute(
        select(Delivery.campaign_id, Delivery.status, func.count())
        .where(Delivery.campaign_id.in_([row.id for row in recent]))
        .group_by(Delivery.campaign_id, Delivery.status)
    ):
        counts[campaign_id][delivery_status] = count
    return Status(
        paused=bool(state and state.paused),
        changed_at=state.changed_at if state and state.changed_at else None,
        changed_by=state.changed_by if state else "",
        campaigns=[
            {
                "id": row.id,
                "kind": row.kind,
                "slot": row.slot,
                "subject": row.subject,
                "status": row.status,
                "deliveries": counts.get(row.id, {}),
            }
            for row in recent
        ],
    )
