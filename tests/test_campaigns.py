"""Campaigns end to end: planning, a real worker, an aiosmtpd relay, faults, pause and cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mailer import campaigns, clock, notices, suppression
from mailer.jobs import get_jobs
from mailer.models import Campaign, Delivery, Subscriber, Suppression, SuppressionReason
from tests.conftest import running_worker
from tests.helpers import add_confirmed, text_part, wait_until
from worker import tasks

WEBINAR_START = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


@pytest.fixture
def campaign_app(make_app):
    return make_app(relay_hold=0.3, throttle_hold=0.6, send_rate=0, site_time_zone="Europe/London")


def _notices(session) -> list[int]:
    now = clock.now()
    return [
        notices.create_notice(
            session,
            notices.NoticeDraft(
                kind="article",
                title="Naltrexone for Fibromyalgia",
                url="https://site.example/naltrexone",
                summary="What the studies found.",
            ),
            source="cli",
            now=now,
        ),
        notices.create_notice(
            session,
            notices.NoticeDraft(
                kind="video",
                title="Gentle stretches",
                url="https://site.example/v/stretch",
                image_url="https://site.example/v/stretch.jpg",
            ),
            source="cli",
            now=now,
        ),
        notices.create_notice(
            session,
            notices.NoticeDraft(
                kind="webinar",
                title="Sleep and pain",
                url="https://site.example/w/sleep",
                starts_at=WEBINAR_START,
                duration_minutes=45,
                join_url="https://meet.example/sleep",
            ),
            source="cli",
            now=now,
        ),
    ]


def _start(app, session, notice_ids, **options) -> int:
    campaign_id = campaigns.create_campaign(
        session, subject="New this week", notice_ids=notice_ids, now=clock.now(), **options
    )
    count = campaigns.start_campaign(session, campaign_id, now=clock.now())
    session.commit()
    with app.app_context():
        get_jobs().start_sending(campaign_id)
    return count


def _only_campaign(session) -> int:
    """The test's one campaign (ids go on rising from test to test, so it is not number 1)."""
    return session.scalars(select(Campaign.id)).one()


def _finished(session, campaign_id=None, timeout=60):
    campaign_id = campaign_id or _only_campaign(session)

    def done():
        session.expire_all()
        status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        return status if status == "finished" else None

    return wait_until(done, timeout=timeout)


def test_each_recipient_gets_one_mail_with_only_their_topics(campaign_app, session, inbox):
    ids = _notices(session)
    for number in range(150):
        add_confirmed(session, f"all{number}@example.org", name="Ann" if number == 0 else "")
    for number in range(50):
        add_confirmed(session, f"video{number}@example.org", ("video",), time_zone="Asia/Tokyo")
    add_confirmed(session, "webinar-only@example.org", ("webinar",))
    add_confirmed(session, "leaver@example.org", ("article",))
    suppression.suppress(
        session, "leaver@example.org", SuppressionReason.UNSUBSCRIBED, now=clock.now()
    )
    session.commit()

    with running_worker(campaign_app):
        assert _start(campaign_app, session, ids[:2] + ids[2:], topics=["article", "video"]) == 200
        _finished(session)

    assert len(inbox.messages) == 200
    assert len({tuple(item.rcpt_tos) for item in inbox.messages}) == 200  # nobody twice
    assert inbox.to("webinar-only@example.org") == [] and inbox.to("leaver@example.org") == []

    ann = inbox.to("all0@example.org")[0].message
    assert ann["Subject"] == "New this week"
    assert [part.get_content_type() for part in ann.iter_parts()] == ["text/plain", "text/html"]
    body = text_part(ann)
    assert body.startswith("Hello Ann,")
    assert "Naltrexone for Fibromyalgia" in body and "Gentle stretches" in body
    assert "Sleep and pain" not in body  # webinars are not this campaign's audience topic
    assert "1 Test Street, Testville" in body and "/preferences/" in body

    video = inbox.to("video0@example.org")[0].message
    assert "Gentle stretches" in text_part(video) and "Naltrexone" not in text_part(video)
    assert text_part(video).startswith("Hello,")
    html = video.get_body(("html",)).get_content()
    assert 'src="https://site.example/v/stretch.jpg"' in html
    assert len(html.encode()) < 100_000

    counts = dict(
        session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    )
    assert counts == {"sent": 200}


def test_webinar_digest_carries_an_ics_and_local_time(campaign_app, session, inbox):
    ids = _notices(session)
    add_confirmed(session, "tokyo@example.org", ("webinar",), time_zone="Asia/Tokyo")
    add_confirmed(session, "london@example.org", ("webinar",))
    session.commit()
    with running_worker(campaign_app):
        _start(campaign_app, session, [ids[2]])
        _finished(session)
    tokyo = inbox.to("tokyo@example.org")[0].message
    assert tokyo.get_content_type() == "multipart/mixed"
    assert "Friday 04 December 2026, 02:00 (JST)" in text_part(tokyo)
    [invite] = [part for part in tokyo.iter_attachments()]
    assert invite.get_content_type() == "text/calendar"
    ics = invite.get_content()
    ics = ics.decode() if isinstance(ics, bytes) else ics
    assert "DTSTART:20261203T170000Z" in ics and "SUMMARY:Sleep and pain" in ics
    assert "17:00 (GMT)" in text_part(inbox.to("london@example.org")[0].message)


def test_temporary_failures_are_retried_and_arrive_once(campaign_app, session, inbox):
    ids = _notices(session)
    for number in range(30):
        add_confirmed(session, f"r{number}@example.org")
    session.commit()
    inbox.answer_next(*["451 4.3.0 Temporary local problem"] * 3)
    with running_worker(campaign_app):
        _start(campaign_app, session, ids[:1])
        _finished(session)
    assert len(inbox.messages) == 30
    assert len({item.rcpt_tos[0] for item in inbox.messages}) == 30


def test_one_recipients_4xx_is_retried_later_without_holding_the_campaign(make_app, session, inbox):
    app = make_app(relay_hold=5, throttle_hold=10, send_rate=0)
    ids = _notices(session)
    for number in range(30):
        add_confirmed(session, f"r{number:02}@example.org")
    session.commit()
    inbox.answer_next("450 4.2.0 Mailbox busy, try later")  # greylisting one recipient
    with running_worker(app):
        _start(app, session, ids[:1])
        _finished(session)
    arrived = [item.rcpt_tos[0] for item in inbox.messages]
    assert sorted(arrived) == [f"r{number:02}@example.org" for number in range(30)]
    campaign = session.scalars(select(Campaign)).one()
    assert campaign.hold_until is None
    retried = session.scalars(select(Delivery).where(Delivery.attempts == 2)).one()
    assert retried.status == "sent"
    # The other 29 went on at once; the greylisted one came back after its backoff.
    greylisted = session.get(Subscriber, retried.subscriber_id)
    assert arrived[-1] == greylisted.email


def test_a_relay_failing_most_answers_trips_the_breaker(campaign_app, session, inbox):
    ids = _notices(session)
    for number in range(40):
        add_confirmed(session, f"r{number:02}@example.org")
    session.commit()
    inbox.answer_next(*["451 4.3.0 Temporary local problem"] * 12)
    with running_worker(campaign_app):
        _start(campaign_app, session, ids[:1])
        _finished(session)
    assert len({item.rcpt_tos[0] for item in inbox.messages}) == len(inbox.messages) == 40
    campaign = session.scalars(select(Campaign)).one()
    assert campaign.hold_until is not None  # the whole campaign waited for the relay
    assert session.scalar(select(func.count()).where(Delivery.status == "failed")) == 0


def test_permanent_failure_fails_and_suppresses_only_that_address(campaign_app, session, inbox):
    ids = _notices(session)
    for number in range(10):
        add_confirmed(session, f"r{number}@example.org")
    session.commit()
    inbox.answer_next("550 5.1.1 No such user")
    with running_worker(campaign_app):
        _start(campaign_app, session, ids[:1])
        _finished(session)
    assert len(inbox.messages) == 9
    failed = session.execute(
        select(Delivery.subscriber_id, Delivery.last_error).where(Delivery.status == "failed")
    ).all()
    assert len(failed) == 1 and "550" in failed[0][1]
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1


def test_throttling_relay_holds_the_campaign_then_it_finishes(campaign_app, session, inbox):
    ids = _notices(session)
    for number in range(20):
        add_confirmed(session, f"r{number}@example.org")
    session.commit()
    inbox.answer_next("421 4.7.28 Our system has detected an unusual rate of mail")
    with running_worker(campaign_app):
        _start(campaign_app, session, ids[:1])
        _finished(session)
    assert len(inbox.messages) == 20
    assert session.scalar(select(func.max(Delivery.attempts))) >= 2


def test_pause_resume_and_cancel(make_app, session, inbox):
    app = make_app(send_rate=20)  # slow enough to pause midway
    ids = _notices(session)
    for number in range(100):
        add_confirmed(session, f"r{number}@example.org")
    session.commit()
    with running_worker(app):
        _start(app, session, ids[:1])
        wait_until(lambda: len(inbox.messages) >= 10)
        campaign_id = _only_campaign(session)
        campaigns.set_paused(session, campaign_id, paused=True, now=clock.now())
        session.commit()
        paused_at = len(inbox.messages)
        import time

        time.sleep(1.5)  # pause takes effect within a second
        settled = len(inbox.messages)
        time.sleep(1.0)
        assert len(inbox.messages) == settled < 100
        assert settled - paused_at < 40
        assert campaigns.progress(session, campaign_id, now=clock.now()).status == "paused"

        campaigns.set_paused(session, campaign_id, paused=False, now=clock.now())
        session.commit()
        with app.app_context():
            get_jobs().start_sending(campaign_id)
        wait_until(lambda: len(inbox.messages) >= settled + 10)
        campaigns.cancel_campaign(session, campaign_id, now=clock.now())
        session.commit()
        time.sleep(1.5)
        final = len(inbox.messages)
    assert final < 100
    assert len({item.rcpt_tos[0] for item in inbox.messages}) == final  # nobody twice
    state = campaigns.progress(session, campaign_id, now=clock.now())
    assert state.status == "cancelled" and state.pending == 0
    assert state.sent == final and state.skipped == 100 - final


def test_scheduled_campaign_starts_when_due(campaign_app, session, inbox):
    ids = _notices(session)
    add_confirmed(session, "ann@example.org")
    campaign_id = campaigns.create_campaign(
        session,
        subject="Later",
        notice_ids=ids[:1],
        now=clock.now(),
        send_at=clock.now() + timedelta(hours=1),
    )
    session.commit()
    with campaign_app.app_context():
        assert tasks.start_due_campaigns.apply().result == 0
        assert campaigns.due_campaigns(session, now=clock.now() + timedelta(hours=2)) == [
            campaign_id
        ]
        session.execute(Campaign.__table__.update().values(send_at=clock.now()))
        session.commit()
        with running_worker(campaign_app):
            assert tasks.start_due_campaigns.apply().result == 1
            inbox.wait_for("ann@example.org")
            _finished(session)


def test_invalid_campaigns_are_refused(session):
    from mailer.errors import InvalidCampaign

    with pytest.raises(InvalidCampaign, match="no notice with id 2147483647"):
        campaigns.create_campaign(session, subject="x", notice_ids=[2147483647], now=clock.now())
    with pytest.raises(InvalidCampaign, match="subject"):
        campaigns.create_campaign(session, subject=" ", notice_ids=[1], now=clock.now())
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0
