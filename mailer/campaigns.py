"""Campaigns: compose, plan one Delivery row per recipient, and move between states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from mailer import events
from mailer import site as site_settings
from mailer.errors import CampaignNotFound, CampaignStateConflict, InvalidCampaign
from mailer.models import (
    Campaign,
    CampaignKind,
    CampaignNotice,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Notice,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    Topic,
)

# Which states each action may start from.
ALLOWED = {
    "start": {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED},
    "pause": {CampaignStatus.SENDING},
    "resume": {CampaignStatus.PAUSED},
    "cancel": {
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
        CampaignStatus.SENDING,
        CampaignStatus.PAUSED,
    },
    # Not while workers may hold its rows: cancel first.
    "delete": {
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
        CampaignStatus.CANCELLED,
        CampaignStatus.FINISHED,
    },
}


@dataclass(frozen=True, slots=True)
class Progress:
    """A campaign's counts per delivery state, and what they imply."""

    status: str
    total: int
    sent: int
    failed: int
    bounced: int  # accepted by the relay, reported undeliverable later (DSN)
    skipped: int
    pending: int
    rate: float  # messages a second since the start
    seconds_left: float | None

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def create_campaign(
    session: Session,
    *,
    subject: str,
    notice_ids: Sequence[int],
    topics: Sequence[str] = (),
    intro: str = "",
    send_at: datetime | None = None,
    now: datetime,
) -> int:
    """Store a draft (or, with `send_at`, a scheduled) campaign; return its id."""
    subject = " ".join(subject.split())
    if not subject or len(subject) > 200:
        raise InvalidCampaign("the subject is required, at most 200 characters")
    if not notice_ids:
        raise InvalidCampaign("a campaign needs at least one notice")
    found = set(session.scalars(select(Notice.id).where(Notice.id.in_(notice_ids))))
    if missing := [str(notice_id) for notice_id in notice_ids if notice_id not in found]:
        raise InvalidCampaign(f"no notice with id {', '.join(missing)}")
    chosen = [topic.value for topic in Topic if topic.value in set(topics)] or [
        topic.value for topic in Topic
    ]
    if unknown := set(topics) - set(Topic):
        raise InvalidCampaign(f"unknown topic {', '.join(sorted(unknown))}")
    if send_at is not None and send_at.tzinfo is None:
        raise InvalidCampaign("the send time needs a time zone offset")
    campaign = Campaign(
        subject=subject,
        intro=intro.strip(),
        topics=",".join(chosen),
        send_at=send_at,
        status=CampaignStatus.SCHEDULED if send_at else CampaignStatus.DRAFT,
        created_at=now,
    )
    session.add(campaign)
    session.flush()
    session.add_all(
        CampaignNotice(campaign_id=campaign.id, notice_id=notice_id, position=position)
        for position, notice_id in enumerate(dict.fromkeys(notice_ids))
    )
    session.flush()
    return campaign.id


def _get(session: Session, campaign_id: int, action: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    if campaign.status not in ALLOWED[action]:
        raise CampaignStateConflict(f"cannot {action} a campaign that is {campaign.status}")
    return campaign


def audience(topics: Sequence[str]):
    """Confirmed subscribers of any of `topics` whose address is not suppressed."""
    return select(Subscriber.id).where(
        Subscriber.status == SubscriberStatus.CONFIRMED,
        exists().where(
            SubscriberTopic.subscriber_id == Subscriber.id,
            SubscriberTopic.topic.in_(list(topics)),
        ),
        ~exists().where(Suppression.email == Subscriber.email),
    )


def covered_topics(session: Session, topics: Sequence[str], notice_ids: Sequence[int]) -> list[str]:
    """The audience topics the notices cover: a reader of videos alone gets nothing from a
    digest of articles, so planning a delivery for them would only be skipped later."""
    kinds = set(session.scalars(select(Notice.kind).where(Notice.id.in_(list(notice_ids)))))
    return [topic for topic in topics if topic in kinds]


def start_campaign(session: Session, campaign_id: int, *, now: datetime) -> int:
    """Plan the deliveries in one INSERT ... SELECT and mark the campaign sending.

    Returns the number of recipients. The campaign row is locked and must be
    a draft or scheduled, so a second start is refused before it inserts
    anything; the unique (campaign, subscriber) pair stays the last guard (a
    duplicate would fail the statement, never send twice). No ON CONFLICT:
    its speculative insertion cost 15 % of planning.
    """
    campaign = _get(session, campaign_id, "start")
    notice_ids = session.scalars(
        select(CampaignNotice.notice_id).where(CampaignNotice.campaign_id == campaign_id)
    ).all()
    recipients = (
        audience(covered_topics(session, campaign.topic_list, notice_ids))
        .add_columns(
            literal(campaign.id),
            literal(DeliveryStatus.QUEUED.value),
            literal(0),
            literal(""),
            literal(""),
        )
        # In subscriber order, every index of the ledger is written in key order
        # (ix_delivery_subscriber_id walked once, not hit at random): a third
        # faster once the ledger holds earlier campaigns.
        .order_by(Subscriber.id)
    )
    planned = session.execute(
        insert(Delivery)
        .from_select(
            ["subscriber_id", "campaign_id", "status", "attempts", "message_id", "last_error"],
            recipients,
        )
        # The driver's count of inserted rows (psycopg and sqlite3 give it), rather
        # than counting a million rows again.
        .execution_options(preserve_rowcount=True)
    ).rowcount
    campaign.status, campaign.started_at = CampaignStatus.SENDING, now
    session.flush()
    events.record_campaigns(session, events.CAMPAIGN_STARTED, [campaign.id], now=now)
    return planned


def set_paused(session: Session, campaign_id: int, *, paused: bool, now: datetime) -> None:
    """Pause a sending campaign, or resume a paused one where it stopped."""
    campaign = _get(session, campaign_id, "pause" if paused else "resume")
    campaign.status = CampaignStatus.PAUSED if paused else CampaignStatus.SENDING
    session.flush()
    if paused:
        events.record_campaigns(session, events.CAMPAIGN_PAUSED, [campaign_id], now=now)


def cancel_campaign(session: Session, campaign_id: int, *, now: datetime) -> None:
    """Stop for good: deliveries not yet sent are skipped."""
    campaign = _get(session, campaign_id, "cancel")
    campaign.status, campaign.finished_at = CampaignStatus.CANCELLED, now
    session.execute(
        update(Delivery)
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED]),
        )
        .values(status=DeliveryStatus.SKIPPED, last_error="campaign cancelled", lease_until=None)
    )
    session.flush()


def delete_campaign(session: Session, campaign_id: int) -> None:
    """Delete a campaign that is not sending, and its Delivery ledger.

    The ledger has no foreign keys (their per-row checks doubled the cost of
    planning), so its rows go here, explicitly. The notice links go by
    cascade; readers who left through this campaign keep their unsubscribe.
    """
    campaign = _get(session, campaign_id, "delete")
    if campaign.kind != CampaignKind.MANUAL:
        # Its ledger is what keeps automatic sends from mailing anyone a notice twice.
        raise CampaignStateConflict("an automatic send cannot be deleted: it records who got what")
    session.execute(delete(Delivery).where(Delivery.campaign_id == campaign_id))
    session.delete(campaign)
    session.flush()


def resend_failed(session: Session, campaign_id: int) -> int:
    """Queue again the deliveries that failed temporarily-then-finally; return how many.

    Permanent failures suppressed their address and stay failed.
    """
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    requeued = (
        session.execute(
            update(Delivery)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.status == DeliveryStatus.FAILED,
                ~exists().where(
                    Suppression.email == Subscriber.email, Subscriber.id == Delivery.subscriber_id
                ),
            )
            .values(status=DeliveryStatus.QUEUED, last_error="", lease_until=None)
        ).rowcount
        or 0
    )
    if requeued and campaign.status == CampaignStatus.FINISHED:
        campaign.status, campaign.finished_at = CampaignStatus.SENDING, None
    session.flush()
    return requeued


# The actions an editor can take on a campaign, from the console, the API or the CLI.
ACTIONS = ("start", "pause", "resume", "cancel", "resend-failed", "schedule")
# After these commit, workers must be told: the campaign has rows to send again.
RESTARTS_SENDING = frozenset({"start", "resume", "resend-failed"})


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What an action did, in words for the person, and whether sending must be (re)started."""

    message: str
    restart_sending: bool


def apply_action(
    session: Session,
    campaign_id: int,
    action: str,
    *,
    now: datetime,
    site: site_settings.SiteSettings,
    send_at: datetime | None = None,
) -> ActionOutcome:
    """Do one of ACTIONS; flush, never commit. The caller commits, then, when
    `restart_sending`, queues the batch chains (mailer.jobs.Jobs.start_sending).

    Raises CampaignNotFound, CampaignStateConflict (the state does not allow
    it), SiteNotReady (no postal address yet: nothing may start or be
    scheduled) or InvalidCampaign. `send_at` is for "schedule" (None unschedules).
    """
    if action == "start" or (action == "schedule" and send_at is not None):
        site_settings.require_ready(site)
    if action == "start":
        count = start_campaign(session, campaign_id, now=now)
        message = f"Sending to {count} recipients."
    elif action in ("pause", "resume"):
        set_paused(session, campaign_id, paused=action == "pause", now=now)
        message = "Paused." if action == "pause" else "Resumed."
    elif action == "cancel":
        cancel_campaign(session, campaign_id, now=now)
        message = "Cancelled: nothing more is sent."
    elif action == "resend-failed":
        message = f"{resend_failed(session, campaign_id)} failed deliveries queued again."
    elif action == "schedule":
        schedule_campaign(session, campaign_id, send_at=send_at, now=now)
        message = "Scheduled." if send_at else "Unscheduled: it waits for you to start it."
    else:
        raise InvalidCampaign(f"unknown action {action[:40]!r}; known: {', '.join(ACTIONS)}")
    return ActionOutcome(message, restart_sending=action in RESTARTS_SENDING)


def progress(session: Session, campaign_id: int, *, now: datetime) -> Progress:
    """Counts per state from the Delivery ledger, the rate so far and the time left."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        ).all()
    )
    sent, failed = counts.get("sent", 0), counts.get("failed", 0)
    pending = counts.get("queued", 0) + counts.get("claimed", 0)
    elapsed = (now - campaign.started_at).total_seconds() if campaign.started_at else 0
    rate = sent / elapsed if elapsed > 0 else 0.0
    return Progress(
        status=campaign.status,
        total=sum(counts.values()),
        sent=sent,
        failed=failed,
        bounced=counts.get("bounced", 0),
        skipped=counts.get("skipped", 0),
        pending=pending,
        rate=round(rate, 1),
        seconds_left=round(pending / rate, 1)
        if rate and pending
        else (0.0 if not pending else None),
    )


def due_campaigns(session: Session, *, now: datetime) -> list[int]:
    """Scheduled campaigns whose time has come."""
    return list(
        session.scalars(
            select(Campaign.id).where(
                Campaign.status == CampaignStatus.SCHEDULED, Campaign.send_at <= now
            )
        )
    )


def stalled_campaigns(session: Session, *, now: datetime) -> list[int]:
    """Sending campaigns with work left but no live lease: their task chains were lost.

    While any worker sends, it holds leased rows; none at all (outside a
    relay hold) means a crash or a broker restart took the chains away.
    """
    work_left = exists().where(
        Delivery.campaign_id == Campaign.id,
        or_(
            Delivery.status == DeliveryStatus.QUEUED,
            (Delivery.status == DeliveryStatus.CLAIMED) & (Delivery.lease_until < now),
        ),
    )
    working = exists().where(
        Delivery.campaign_id == Campaign.id,
        Delivery.status == DeliveryStatus.CLAIMED,
        Delivery.lease_until >= now,
    )
    return list(
        session.scalars(
            select(Campaign.id).where(
                Campaign.status == CampaignStatus.SENDING,
                work_left,
                ~working,
                or_(Campaign.hold_until.is_(None), Campaign.hold_until < now),
            )
        )
    )


def count_audience(
    session: Session, *, topics: Sequence[str], notice_ids: Sequence[int] = ()
) -> int:
    """How many subscribers a campaign of these topics and notices would mail, before it exists.

    Only the topics the notices cover count: a reader of videos alone gets
    nothing from a digest of articles (nobody gets an empty digest), and
    without a notice nobody gets anything: 0.
    """
    chosen = [topic.value for topic in Topic if topic.value in set(topics)] or [
        topic.value for topic in Topic
    ]
    chosen = covered_topics(session, chosen, notice_ids) if notice_ids else []
    if not chosen:
        return 0
    return session.scalar(select(func.count()).select_from(audience(chosen).subquery())) or 0


def schedule_campaign(
    session: Session, campaign_id: int, *, send_at: datetime | None, now: datetime
) -> None:
    """Set (or, with None, clear) the send time of a campaign not yet started.

    The beat starts a scheduled campaign within 30 seconds of its time. A time
    a few minutes past is taken as "now"; one further back is a mistake.
    """
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    if campaign.status not in {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED}:
        raise CampaignStateConflict(f"cannot schedule a campaign that is {campaign.status}")
    if send_at is not None and send_at.tzinfo is None:
        raise InvalidCampaign("the send time needs a time zone offset")
    if send_at is not None and send_at < now - timedelta(minutes=5):
        raise InvalidCampaign("the send time is in the past")
    campaign.send_at = send_at
    campaign.status = CampaignStatus.SCHEDULED if send_at else CampaignStatus.DRAFT
    session.flush()


def campaign_notices(session: Session, campaign_id: int) -> list[Notice]:
    """The campaign's notices in the order the editor chose."""
    return list(
        session.scalars(
            select(Notice)
            .join(CampaignNotice, CampaignNotice.notice_id == Notice.id)
            .where(CampaignNotice.campaign_id == campaign_id)
            .order_by(CampaignNotice.position)
        )
    )


def notice_count(session: Session, campaign_id: int) -> int:
    """How many notices a campaign lists: a weekly digest gains some as time zones come due."""
    return (
        session.scalar(
            select(func.count())
            .select_from(CampaignNotice)
            .where(CampaignNotice.campaign_id == campaign_id)
        )
        or 0
    )
