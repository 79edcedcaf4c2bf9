"""A campaign's Delivery rows: planned, claimed, and deleted (the ledger has no foreign keys)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from mailer import campaigns, clock, notices, privacy, suppression
from mailer.errors import CampaignNotFound, CampaignStateConflict
from mailer.models import (
    Campaign,
    CampaignNotice,
    Delivery,
    Notice,
    Subscriber,
    SuppressionReason,
)
from mailer.sending import ledger
from tests.helpers import add_confirmed


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request, make_app, sqlite_url):
    """A session on PostgreSQL and on the embedded default's SQLite."""
    app = make_app(database_url=sqlite_url) if request.param == "sqlite" else make_app()
    with app.extensions["mailer.sessionmaker"]() as session:
        yield session


def _started(session, topics: tuple[str, ...] = ()) -> int:
    notice_id = notices.create_notice(
        session,
        notices.NoticeDraft(kind="article", title="New", url="https://site.example/new"),
        source="cli",
        now=clock.now(),
    )
    campaign_id = campaigns.create_campaign(
        session, subject="This week", notice_ids=[notice_id], topics=topics, now=clock.now()
    )
    campaigns.start_campaign(session, campaign_id, now=clock.now())
    session.commit()
    return campaign_id


def _ledger(session) -> list[tuple[int, int, str]]:
    """Every Delivery row as (campaign, subscriber, status), in claim order."""
    rows = session.execute(
        select(Delivery.campaign_id, Delivery.subscriber_id, Delivery.status).order_by(Delivery.id)
    )
    return [tuple(row) for row in rows]


def test_start_plans_one_queued_row_per_recipient_in_subscriber_order(db):
    readers = [add_confirmed(db, f"reader{number}@example.org") for number in range(5)]
    add_confirmed(db, "videos-only@example.org", ("video",))
    add_confirmed(db, "left@example.org")
    suppression.suppress(db, "left@example.org", SuppressionReason.UNSUBSCRIBED, now=clock.now())
    waiting = db.get_one(Subscriber, add_confirmed(db, "waiting@example.org"))
    waiting.status = "pending"
    notice_id = notices.create_notice(
        db,
        notices.NoticeDraft(kind="article", title="New", url="https://site.example/new"),
        source="cli",
        now=clock.now(),
    )
    campaign_id = campaigns.create_campaign(
        db, subject="Articles", notice_ids=[notice_id], topics=["article"], now=clock.now()
    )

    assert campaigns.start_campaign(db, campaign_id, now=clock.now()) == 5
    db.commit()
    assert _ledger(db) == [(campaign_id, reader, "queued") for reader in readers]

    # A second start is refused before it plans anything.
    with pytest.raises(CampaignStateConflict, match="cannot start a campaign that is sending"):
        campaigns.start_campaign(db, campaign_id, now=clock.now())
    db.rollback()
    assert len(_ledger(db)) == 5


def test_the_database_still_refuses_a_second_row_for_one_reader(db):
    reader = add_confirmed(db, "once@example.org")
    campaign_id = _started(db)

    db.add(Delivery(campaign_id=campaign_id, subscriber_id=reader))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()
    assert _ledger(db) == [(campaign_id, reader, "queued")]


def test_deleting_a_campaign_deletes_its_ledger_and_nothing_else(db):
    ann = add_confirmed(db, "ann@example.org")
    bob = add_confirmed(db, "bob@example.org")
    first, second = _started(db), _started(db)
    leaver = db.get_one(Subscriber, bob)
    leaver.status, leaver.unsubscribed_campaign_id = "unsubscribed", first
    db.commit()

    campaigns.cancel_campaign(db, first, now=clock.now())
    campaigns.delete_campaign(db, first)
    db.commit()

    db.expire_all()
    assert _ledger(db) == [(second, ann, "queued"), (second, bob, "queued")]
    assert db.get(Campaign, first) is None
    assert db.scalars(select(CampaignNotice.campaign_id)).all() == [second]
    assert db.scalar(select(func.count()).select_from(Notice)) == 2  # notices stay
    assert (leaver.status, leaver.unsubscribed_campaign_id) == ("unsubscribed", None)


def test_a_sending_campaign_is_not_deleted(db):
    reader = add_confirmed(db, "reader@example.org")
    campaign_id = _started(db)

    with pytest.raises(CampaignStateConflict, match="cannot delete a campaign that is sending"):
        campaigns.delete_campaign(db, campaign_id)
    db.rollback()
    with pytest.raises(CampaignNotFound):
        campaigns.delete_campaign(db, campaign_id + 1)
    db.rollback()

    assert db.get_one(Campaign, campaign_id).status == "sending"
    assert _ledger(db) == [(campaign_id, reader, "queued")]


def test_erasing_a_subscriber_deletes_their_deliveries_from_every_campaign(db):
    ann = add_confirmed(db, "ann@example.org")
    bob = add_confirmed(db, "bob@example.org")
    first, second = _started(db), _started(db)

    privacy.erase_subscriber(db, ann, now=clock.now())
    db.commit()

    assert _ledger(db) == [(first, bob, "queued"), (second, bob, "queued")]


def test_claims_take_the_queue_first_then_leases_that_ran_out(db):
    readers = [add_confirmed(db, f"reader{number}@example.org") for number in range(6)]
    campaign_id = _started(db)
    now = clock.now()
    ids = dict(db.execute(select(Delivery.subscriber_id, Delivery.id)).all())
    leases = {  # three rows a worker holds: two leases ran out long ago, one is live
        readers[0]: now - timedelta(minutes=1),
        readers[1]: now - timedelta(minutes=9),
        readers[2]: now + timedelta(minutes=4),
    }
    for reader, lease_until in leases.items():
        db.execute(
            update(Delivery)
            .where(Delivery.id == ids[reader])
            .values(status="claimed", lease_until=lease_until, attempts=1)
        )
    db.commit()

    lease = timedelta(minutes=5)
    first = ledger.claim_batch(db, campaign_id, size=4, now=now, lease=lease)
    second = ledger.claim_batch(db, campaign_id, size=4, now=now, lease=lease)
    third = ledger.claim_batch(db, campaign_id, size=4, now=now, lease=lease)
    db.commit()

    # The three queued rows, then the lease that ran out first; then the other one.
    assert sorted(first) == sorted((ids[r], r) for r in (*readers[3:], readers[1]))
    assert second == [(ids[readers[0]], readers[0])]
    assert third == []  # the live lease stays with its worker
    attempts = dict(db.execute(select(Delivery.subscriber_id, Delivery.attempts)).all())
    assert [attempts[reader] for reader in readers] == [2, 2, 1, 1, 1, 1]
