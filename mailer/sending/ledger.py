"""One campaign's Delivery ledger as a sending worker sees it: claim, renew, record, retry.

A row goes queued → claimed (leased to one worker) → sent, failed or skipped,
or back to queued when a batch stops early. The batch loop (mailer.sending.batch)
talks to the ledger only through `CampaignLedger`, which needs several
transactions by nature (claim, send, record), so it holds a sessionmaker
rather than a session. A claimed row carries a lease: if the worker dies, the
row returns to the queue when the lease expires, and at most the message in
flight at that moment can go out twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, bindparam, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailer import events, suppression
from mailer.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    SuppressionReason,
)
from mailer.settings import Settings


@dataclass(frozen=True, slots=True)
class BatchSettings:
    size: int = 200
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    relay_hold: timedelta = timedelta(seconds=30)  # relay down or failing: wait, then go on
    throttle_hold: timedelta = timedelta(minutes=10)  # Gmail: "at least 10 minutes"

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchSettings:
        return cls(
            max_attempts=settings.retry_max + 1,
            relay_hold=timedelta(seconds=settings.relay_hold),
            lease=timedelta(seconds=settings.lease_seconds),
            throttle_hold=timedelta(seconds=settings.throttle_hold),
        )


@dataclass(frozen=True, slots=True)
class Reader:
    """What a message needs of a subscriber: nothing more is loaded per message."""

    email: str
    name: str
    topics: tuple[str, ...]
    time_zone: str
    # Automatic sends choose each reader's notices when planning; () = the campaign's.
    notice_ids: tuple[int, ...] = ()
    token_key: str = ""  # what the tokens in their mail are bound to (mailer.tokens)


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    reader: Reader | None  # None: unsubscribed or suppressed since planning


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


def readers(
    session: Session, campaign_id: int, subscriber_ids: list[int]
) -> dict[int, Reader | None]:
    """Readers by subscriber id; None for those who left or were suppressed since planning."""
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
    found: dict[int, Reader | None] = dict.fromkeys(subscriber_ids)
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
        found[subscriber_id] = Reader(
            email=email,
            name=name,
            topics=tuple(sorted(topics.get(subscriber_id, []))),
            time_zone=zone,
            notice_ids=chosen.get(subscriber_id, ()),
            token_key=key,
        )
    return found


def campaign_state(session: Session | Connection, campaign_id: int) -> tuple[str, datetime | None]:
    status, hold = session.execute(
        select(Campaign.status, Campaign.hold_until).where(Campaign.id == campaign_id)
    ).one()
    return status, hold


@dataclass
class Outcomes:
    """What a batch did with each claimed row, recorded when the batch ends."""

    sent: list[int] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    released: list[dict] = field(default_factory=list)
    retry: list[dict] = field(default_factory=list)
    untried: list[int] = field(default_factory=list)  # released without a word from the relay
    suppress: list[str] = field(default_factory=list)


class CampaignLedger:
    """One campaign's rows for one batch: claim, then record each outcome, then settle."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        campaign_id: int,
        settings: BatchSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.factory, self.campaign_id = factory, campaign_id
        self.settings, self.clock = settings, clock
        self.outcomes = Outcomes()
        self._live: Connection | None = None
        self._last_check = time.monotonic()

    def state(self) -> tuple[str, datetime | None]:
        """The campaign's status and the time its hold ends, if it is held."""
        with self.factory() as session:
            return campaign_state(session, self.campaign_id)

    def claim(self) -> list[Claimed]:
        """Lease a batch of rows, with what each message needs of its reader."""
        with self.factory() as session:
            rows = claim_batch(
                session,
                self.campaign_id,
                size=self.settings.size,
                now=self.clock(),
                lease=self.settings.lease,
            )
            found = readers(session, self.campaign_id, [sid for _, sid in rows]) if rows else {}
            session.commit()
        return [Claimed(delivery_id, sid, found.get(sid)) for delivery_id, sid in rows]

    def __enter__(self) -> CampaignLedger:
        # One connection for the whole batch, in autocommit: each sent row is on
        # disk before the next message goes, at one round trip a message (no
        # pool checkout, pre-ping, BEGIN and COMMIT each time).
        bind = self.factory.kw["bind"]
        self._live = bind.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self

    def __exit__(self, *_: object) -> None:
        if self._live is not None:
            self._live.close()
            self._live = None

    def still_sending(self, remaining: list[Claimed]) -> bool:
        """Whether the campaign still sends; renews the lease on `remaining` while it does.

        Asked at most twice a second, so pause and cancel take effect within a
        second, and a slow batch (a low send rate) is never taken over by
        another worker while this one still sends.
        """
        if time.monotonic() - self._last_check <= 0.5:
            return True
        self._last_check = time.monotonic()
        assert self._live is not None  # noqa: S101 - narrowing: only called inside `with ledger`
        if campaign_state(self._live, self.campaign_id)[0] != CampaignStatus.SENDING:
            return False
        self._live.execute(
            update(Delivery)
            .where(
                Delivery.id.in_([row.delivery_id for row in remaining]),
                Delivery.status == DeliveryStatus.CLAIMED,
            )
            .values(lease_until=self.clock() + self.settings.lease)
        )
        return True

    def sent(self, delivery_id: int, message_id: str) -> None:
        """Record at once: a worker killed from here on can send this message again, never the
        batch."""
        assert self._live is not None  # noqa: S101 - narrowing: only called inside `with ledger`
        self._live.execute(
            MARK_SENT,
            {"delivery_id": delivery_id, "message_id": message_id, "sent_at": self.clock()},
        )
        self.outcomes.sent.append(delivery_id)

    def failed(self, delivery_id: int, error: str, *, email: str) -> None:
        """A permanent failure: the row fails and the address is suppressed."""
        self.outcomes.failed.append({"id": delivery_id, "last_error": error})
        self.outcomes.suppress.append(email)

    def skipped(self, delivery_id: int, why: str) -> None:
        self.outcomes.skipped.append({"id": delivery_id, "last_error": why})

    def retry(self, delivery_id: int, error: str) -> None:
        """One recipient's temporary failure: try that row again later."""
        self.outcomes.retry.append({"id": delivery_id, "last_error": error})

    def release(self, delivery_id: int, reason: str, *, untried: bool) -> None:
        """Give the row back to the queue; `untried`: the relay said nothing about it."""
        self.outcomes.released.append({"id": delivery_id, "last_error": reason})
        if untried:
            self.outcomes.untried.append(delivery_id)

    def settle(self, *, hold_seconds: float) -> bool:
        """Write every outcome but the sent ones; hold or finish the campaign; say if more
        remain."""
        with self.factory() as session:
            more = _record(
                session, self.campaign_id, self.outcomes, self.settings, self.clock(), hold_seconds
            )
            session.commit()
        return more


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


def _release(
    session: Session, campaign_id: int, outcomes: Outcomes, settings: BatchSettings
) -> None:
    # Rows given back by a batch that stopped go back to the queue,
    # unless the campaign was cancelled meanwhile: then they are done.
    cancelled = campaign_state(session, campaign_id)[0] == CampaignStatus.CANCELLED
    back = DeliveryStatus.SKIPPED if cancelled else DeliveryStatus.QUEUED
    session.execute(
        update(Delivery),
        [{**row, "status": back, "lease_until": None} for row in outcomes.released],
    )
    # Only attempts the relay answered count: an outage or a pause must
    # not wear down the list until everyone is marked failed.
    if outcomes.untried:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(outcomes.untried))
            .values(attempts=Delivery.attempts - 1)
        )
    # A row that keeps failing temporarily gives up after max_attempts.
    session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_([row["id"] for row in outcomes.released]),
            Delivery.attempts >= settings.max_attempts,
        )
        .values(status=DeliveryStatus.FAILED)
    )


def _open_rows(campaign_id: int) -> ColumnElement[bool]:
    """Rows queued or claimed: two EXISTS, each answered by its partial index in well under
    a millisecond, where a count of the open rows grows with the campaign."""
    return exists().where(
        Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.QUEUED
    ) | exists().where(
        Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.CLAIMED
    )


def _record(
    session: Session,
    campaign_id: int,
    outcomes: Outcomes,
    settings: BatchSettings,
    now: datetime,
    hold_seconds: float,
) -> bool:
    for status, rows in (("failed", outcomes.failed), ("skipped", outcomes.skipped)):
        if rows:
            session.execute(
                update(Delivery), [{**row, "status": status, "lease_until": None} for row in rows]
            )
    if outcomes.retry:
        _retry_later(session, outcomes.retry, settings, now)
    if outcomes.released:
        _release(session, campaign_id, outcomes, settings)
    for email in dict.fromkeys(outcomes.suppress):
        suppression.suppress(session, email, SuppressionReason.HARD_BOUNCE, now=now)
    if hold_seconds:
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(hold_until=now + timedelta(seconds=hold_seconds))
        )
    if session.scalar(select(_open_rows(campaign_id))):
        return True
    # Nothing left, as far as this transaction saw; but a planner may be adding a
    # later time zone's readers right now (a weekly digest reopens). Lock the row
    # the planner locks too (automatic._settle), then finish in one statement that
    # looks again: PostgreSQL waits for the planner's commit and then sees its rows,
    # SQLite runs the statement under its one write lock; or the planner sees this.
    session.execute(select(Campaign.id).where(Campaign.id == campaign_id).with_for_update())
    finished = (
        session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SENDING,
                ~_open_rows(campaign_id),
            )
            .values(status=CampaignStatus.FINISHED, finished_at=now)
            .returning(Campaign.id)
        )
        .scalars()
        .all()
    )
    events.record_campaigns(session, events.CAMPAIGN_FINISHED, finished, now=now)
    return not finished and bool(session.scalar(select(_open_rows(campaign_id))))
