"""Sending a campaign: claim a batch of Delivery rows, send them over one connection, record.

`send_batch` needs several transactions by nature (claim, send, record), so it
takes a sessionmaker rather than a session. A claimed row carries a lease: if
the worker dies, the row returns to the queue when the lease expires, and at
most the message in flight at that moment can go out twice.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, bindparam, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailer import suppression
from mailer.breaker import Breaker
from mailer.compose import Composer
from mailer.digest import DigestRenderer, Recipient
from mailer.mailing import LinkMaker
from mailer.models import (
    Campaign,
    CampaignNotice,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Notice,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    SuppressionReason,
)
from mailer.ratelimit import Bucket
from mailer.tokens import Purpose, delivery_binding
from mailer.transport import PermanentFailure, RelayUnavailable, Transport

# Replies that mean "you are sending too much": the whole campaign slows down.
THROTTLE = re.compile(r"^(421|450|451|452)\b.*(4\.7\.28|4\.7\.0|rate|too many|throttl)", re.I)


@dataclass(frozen=True, slots=True)
class BatchSettings:
    size: int = 200
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    relay_hold: timedelta = timedelta(seconds=30)  # relay down or failing: wait, then go on
    throttle_hold: timedelta = timedelta(minutes=10)  # Gmail: "at least 10 minutes"


@dataclass
class BatchOutcome:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    released: int = 0
    hold_seconds: float = 0.0
    more: bool = False
    notes: list[str] = field(default_factory=list)


MARK_SENT = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"))
    .values(
        status=DeliveryStatus.SENT,
        message_id=bindparam("message_id"),
        sent_at=bindparam("sent_at"),
        lease_until=None,
    )
)


def claim_batch(
    session: Session, campaign_id: int, *, size: int, now: datetime, lease: timedelta
) -> list[tuple[int, int]]:
    """Lease up to `size` queued (or lease-expired) rows; return (delivery id, subscriber id).

    FOR UPDATE SKIP LOCKED lets many workers claim from one campaign at once
    without waiting on each other (PostgreSQL; SQLite serialises writers).
    Queued rows first, then expired leases if the queue runs short: two
    queries, each matching its own partial index (ix_delivery_queued,
    ix_delivery_claimed). For one query on `queued OR expired lease`,
    PostgreSQL at times walked the sent rows by primary key (bench/README.md).
    """

    def lease_rows(which: ColumnElement[bool], order: ColumnElement, limit: int) -> list:
        candidates = (
            select(Delivery.id)
            .where(Delivery.campaign_id == campaign_id, which)
            .order_by(order)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return session.execute(
            update(Delivery)
            .where(Delivery.id.in_(candidates.scalar_subquery()))
            .values(
                status=DeliveryStatus.CLAIMED,
                lease_until=now + lease,
                attempts=Delivery.attempts + 1,
            )
            .returning(Delivery.id, Delivery.subscriber_id)
        ).all()

    rows = lease_rows(Delivery.status == DeliveryStatus.QUEUED, Delivery.id, size)
    if len(rows) < size:  # a dead worker's rows, once their lease is over
        expired = (Delivery.status == DeliveryStatus.CLAIMED) & (Delivery.lease_until < now)
        rows += lease_rows(expired, Delivery.lease_until, size - len(rows))
    return [(row[0], row[1]) for row in rows]


def _recipients(
    session: Session,
    subscriber_ids: list[int],
    links: LinkMaker,
    campaign_id: int,
) -> dict[int, Recipient | None]:
    """Recipients by subscriber id; None for those who left or were suppressed since planning."""
    topics: dict[int, list[str]] = {}
    for subscriber_id, topic in session.execute(
        select(SubscriberTopic.subscriber_id, SubscriberTopic.topic).where(
            SubscriberTopic.subscriber_id.in_(subscriber_ids)
        )
    ):
        topics.setdefault(subscriber_id, []).append(topic)
    chosen = {  # automatic sends: the notices planned for each reader
        subscriber_id: tuple(int(notice_id) for notice_id in notice_ids.split(","))
        for subscriber_id, notice_ids in session.execute(
            select(Delivery.subscriber_id, Delivery.notice_ids).where(
                Delivery.campaign_id == campaign_id,
                Delivery.subscriber_id.in_(subscriber_ids),
                Delivery.notice_ids != "",
            )
        )
    }
    found: dict[int, Recipient | None] = dict.fromkeys(subscriber_ids)
    rows = session.execute(
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.name,
            Subscriber.time_zone,
            Subscriber.token_key,
        ).where(
            Subscriber.id.in_(subscriber_ids),
            Subscriber.status == SubscriberStatus.CONFIRMED,
            ~exists().where(Suppression.email == Subscriber.email),
        )
    )
    for subscriber_id, email, name, zone, key in rows:
        found[subscriber_id] = Recipient(
            email=email,
            name=name,
            topics=tuple(sorted(topics.get(subscriber_id, []))),
            time_zone=zone,
            preferences_url=links.url("preferences", Purpose.PREFERENCES, subscriber_id, bind=key),
            unsubscribe_url=links.unsubscribe_url(subscriber_id, campaign_id, key),
            unsubscribe_mailto=links.unsubscribe_mailto(subscriber_id, campaign_id, key),
            notice_ids=chosen.get(subscriber_id, ()),
            token_key=key,
        )
    return found


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


def load_renderer(
    session: Session, campaign_id: int, composer: Composer, *, site_time_zone: str
) -> DigestRenderer:
    """A renderer for the campaign, with its notices in the order the editor chose."""
    campaign = session.get_one(Campaign, campaign_id)
    notices = campaign_notices(session, campaign_id)
    session.expunge_all()
    return DigestRenderer(composer, campaign, notices, site_time_zone=site_time_zone)


def _campaign_state(session: Session | Connection, campaign_id: int) -> tuple[str, datetime | None]:
    status, hold = session.execute(
        select(Campaign.status, Campaign.hold_until).where(Campaign.id == campaign_id)
    ).one()
    return status, hold


def send_batch(
    factory: sessionmaker[Session],
    campaign_id: int,
    *,
    transport: Transport,
    renderer: DigestRenderer,
    links: LinkMaker,
    bucket: Bucket,
    breaker: Breaker,
    settings: BatchSettings,
    clock: Callable[[], datetime],
) -> BatchOutcome:
    """Claim, send and record one batch of the campaign; say whether more remain."""
    outcome = BatchOutcome()
    with factory() as session:
        status, hold = _campaign_state(session, campaign_id)
        now = clock()
        if status != CampaignStatus.SENDING:
            return outcome
        if hold is not None and hold > now:
            outcome.hold_seconds, outcome.more = (hold - now).total_seconds(), True
            return outcome
        claimed = claim_batch(
            session, campaign_id, size=settings.size, now=now, lease=settings.lease
        )
        recipients = (
            _recipients(session, [sid for _, sid in claimed], links, campaign_id) if claimed else {}
        )
        session.commit()
    outcome.claimed = len(claimed)

    results: dict[str, list[dict]] = {
        "sent": [],
        "failed": [],
        "skipped": [],
        "released": [],
        "retry": [],
    }
    suppress: list[str] = []
    last_check = time.monotonic()
    stop_reason = ""
    # One connection for the whole batch, in autocommit: each sent row is on
    # disk before the next message goes, at one round trip a message (no
    # pool checkout, pre-ping, BEGIN and COMMIT each time).
    live = factory.kw["bind"].connect().execution_options(isolation_level="AUTOCOMMIT")
    untried: list[int] = []  # released without a word from the relay: the attempt is undone
    try:
        for position, (delivery_id, subscriber_id) in enumerate(claimed):
            if stop_reason:
                untried.append(delivery_id)
                results["released"].append({"id": delivery_id, "last_error": stop_reason})
                continue
            if time.monotonic() - last_check > 0.5:  # pause and cancel take effect within a second
                last_check = time.monotonic()
                if _campaign_state(live, campaign_id)[0] != CampaignStatus.SENDING:
                    stop_reason = "campaign paused or cancelled"
                    untried.append(delivery_id)
                    results["released"].append({"id": delivery_id, "last_error": stop_reason})
                    continue
                # Renew the lease on what is left, so a slow batch (a low send rate)
                # is never taken over by another worker while this one still sends.
                live.execute(
                    update(Delivery)
                    .where(
                        Delivery.id.in_([row[0] for row in claimed[position:]]),
                        Delivery.status == DeliveryStatus.CLAIMED,
                    )
                    .values(lease_until=clock() + settings.lease)
                )
            recipient = recipients.get(subscriber_id)
            outgoing = (
                renderer.build(
                    recipient,
                    now=clock(),
                    return_path=links.return_path(
                        Purpose.BOUNCE,
                        delivery_id,
                        bind=delivery_binding(campaign_id, subscriber_id, recipient.token_key),
                    ),
                )
                if recipient
                else None
            )
            if outgoing is None:
                why = (
                    "unsubscribed or suppressed"
                    if recipient is None
                    else "no notice of their topics"
                )
                results["skipped"].append({"id": delivery_id, "last_error": why})
                continue
            bucket.take()
            [result] = transport.send([outgoing])
            now = clock()
            if result.error is None:
                # Committed before the next message: a worker killed from here on
                # can send at most the message in flight twice, never the batch.
                live.execute(
                    MARK_SENT,
                    {"delivery_id": delivery_id, "message_id": result.message_id, "sent_at": now},
                )
                results["sent"].append({"id": delivery_id})
                breaker.record(failed=False)
            elif isinstance(result.error, PermanentFailure):
                breaker.record(failed=False)  # an answer about the recipient, not the relay
                results["failed"].append({"id": delivery_id, "last_error": str(result.error)})
                suppress.append(recipient.email)  # type: ignore[union-attr]
            elif not (
                isinstance(result.error, RelayUnavailable)
                or THROTTLE.match(str(result.error))
                or breaker.record(failed=True)
            ):
                # One recipient's 4xx (greylisting, a full mailbox) while the relay
                # is otherwise fine: retry that one later and go on with the rest.
                results["retry"].append({"id": delivery_id, "last_error": str(result.error)})
            else:
                # Relay down, throttling, or failing for much of the last minute: put
                # this and the rest back and hold the whole campaign, rather than
                # burn through the list.
                error = str(result.error)
                stop_reason = error
                if isinstance(result.error, RelayUnavailable):
                    untried.append(delivery_id)  # the relay said nothing about this recipient
                results["released"].append({"id": delivery_id, "last_error": error})
                hold = settings.throttle_hold if THROTTLE.match(error) else settings.relay_hold
                outcome.hold_seconds = hold.total_seconds()
                outcome.notes.append(f"holding {outcome.hold_seconds:.0f}s after: {error}")
    finally:
        live.close()
    _record(factory, campaign_id, results, suppress, untried, outcome, settings, clock())
    if not claimed and outcome.more:
        # Rows remain but others hold them (or a dead worker's lease has yet
        # to expire): look again in a second instead of spinning.
        outcome.hold_seconds = max(outcome.hold_seconds, 1.0)
    return outcome


def _retry_later(
    session: Session, rows: list[dict], settings: BatchSettings, now: datetime
) -> None:
    """Lease each row until its next try: relay_hold doubled per attempt, up to throttle_hold.

    A row leased into the future is what claim_batch takes back once the lease
    is over, so no worker waits for it; after max_attempts it fails for good.
    """
    attempts: dict[int, int] = {
        delivery_id: tried
        for delivery_id, tried in session.execute(
            select(Delivery.id, Delivery.attempts).where(
                Delivery.id.in_([row["id"] for row in rows])
            )
        )
    }
    updates = []
    for row in rows:
        tried = attempts.get(row["id"], 1)
        wait = min(settings.relay_hold * 2 ** max(tried - 1, 0), settings.throttle_hold)
        # Jitter: retries of one greylisting domain spread out. Not a secret: any PRNG does.
        wait *= random.uniform(0.5, 1.0)  # noqa: S311
        done = tried >= settings.max_attempts
        updates.append(
            {
                **row,
                "status": DeliveryStatus.FAILED if done else DeliveryStatus.CLAIMED,
                "lease_until": None if done else now + wait,
            }
        )
    session.execute(update(Delivery), updates)


def _record(
    factory: sessionmaker[Session],
    campaign_id: int,
    results: dict[str, list[dict]],
    suppress: list[str],
    untried: list[int],
    outcome: BatchOutcome,
    settings: BatchSettings,
    now: datetime,
) -> None:
    with factory() as session:
        for status in ("failed", "skipped"):
            rows = results[status]
            if rows:
                session.execute(
                    update(Delivery),
                    [{**row, "status": status, "lease_until": None} for row in rows],
                )
        if results["retry"]:
            _retry_later(session, results["retry"], settings, now)
        if results["released"]:
            # Rows given back by a batch that stopped go back to the queue,
            # unless the campaign was cancelled meanwhile: then they are done.
            cancelled = _campaign_state(session, campaign_id)[0] == CampaignStatus.CANCELLED
            back = DeliveryStatus.SKIPPED if cancelled else DeliveryStatus.QUEUED
            session.execute(
                update(Delivery),
                [{**row, "status": back, "lease_until": None} for row in results["released"]],
            )
            # Only attempts the relay answered count: an outage or a pause must
            # not wear down the list until everyone is marked failed.
            if untried:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(untried))
                    .values(attempts=Delivery.attempts - 1)
                )
            # A row that keeps failing temporarily gives up after max_attempts.
            session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_([row["id"] for row in results["released"]]),
                    Delivery.attempts >= settings.max_attempts,
                )
                .values(status=DeliveryStatus.FAILED)
            )
        for email in dict.fromkeys(suppress):
            suppression.suppress(session, email, SuppressionReason.HARD_BOUNCE, now=now)
        if outcome.hold_seconds:
            session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(hold_until=now + timedelta(seconds=outcome.hold_seconds))
            )
        # Two EXISTS, each answered by its partial index in well under a
        # millisecond, where a count of the open rows grows with the campaign.
        pending = session.scalar(
            select(
                exists().where(
                    Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.QUEUED
                )
                | exists().where(
                    Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.CLAIMED
                )
            )
        )
        if not pending:
            session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
                .values(status=CampaignStatus.FINISHED, finished_at=now)
            )
        session.commit()
    outcome.sent, outcome.failed = len(results["sent"]), len(results["failed"])
    outcome.skipped, outcome.released = len(results["skipped"]), len(results["released"])
    outcome.more = bool(pending)
