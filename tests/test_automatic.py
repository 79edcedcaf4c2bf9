"""Automatic sends on controlled time: as published, weekly digests, reminders, the pause switch.

Each beat tick runs the real task with a given moment (`at`); a real worker
sends what it plans to the aiosmtpd relay. Nothing sleeps for a week.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from mailer import automatic, campaigns, clock, notices, preferences
from mailer.cli import main
from mailer.jobs import get_jobs
from mailer.models import (
    AutomaticSending,
    Campaign,
    CampaignKind,
    Delivery,
    Subscriber,
)
from mailer.settings import Settings, SettingsError
from tests.conftest import running_worker
from tests.helpers import add_confirmed, text_part, wait_until
from worker import tasks

ALL = ("article", "video", "webinar")
JOINED = datetime(2027, 1, 5, 12, 0, tzinfo=UTC)  # a Tuesday: readers confirm here
WEDNESDAY = datetime(2027, 1, 6, 10, 0, tzinfo=UTC)
MONDAY = datetime(2027, 1, 11, tzinfo=UTC)  # ISO week 2027-W02; London is on UTC in January


@pytest.fixture
def auto_app(make_app):
    return make_app(
        send_rate=0,
        site_time_zone="Europe/London",
        publish_window_minutes=15,
        digest_weekday="monday",
        digest_hour=8,
        reminder_hours=24,
    )


def _reader(session, email, frequency, topics=ALL, zone="") -> int:
    subscriber_id = add_confirmed(session, email, topics, time_zone=zone)
    subscriber = session.get(Subscriber, subscriber_id)
    subscriber.frequency, subscriber.confirmed_at = frequency, JOINED
    session.commit()
    return subscriber_id


def _notice(session, title, at, kind="article", **webinar) -> int:
    slug = title.lower().replace(" ", "-")
    notice_id = notices.create_notice(
        session,
        notices.NoticeDraft(kind=kind, title=title, url=f"https://site.example/{slug}", **webinar),
        source="api",
        now=at,
    )
    session.commit()
    return notice_id


def _tick(app, session, at: datetime) -> int:
    """One beat tick as of `at`; waits until everything it started has been sent."""
    with app.app_context():
        started = tasks.plan_automatic_sends.apply(args=[at.isoformat()]).get()
    _settled(session)
    return started


def _settled(session) -> None:
    def nothing_pending():
        session.expire_all()
        return not session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.status.in_(["queued", "claimed"]))
        )

    try:
        wait_until(nothing_pending, timeout=30)
    except AssertionError:  # say what is stuck, and why, rather than only that it is
        stuck = session.execute(
            select(
                Delivery.campaign_id, Delivery.status, Delivery.attempts, Delivery.last_error
            ).where(Delivery.status.in_(["queued", "claimed"]))
        ).all()
        held = session.execute(select(Campaign.id, Campaign.status, Campaign.hold_until)).all()
        raise AssertionError(f"deliveries still pending: {stuck}; campaigns: {held}") from None


def _titles(inbox, email, known) -> list[list[str]]:
    """For each mail `email` received, in order: which of the `known` titles it carries."""
    return [
        [title for title in known if title in text_part(item.message)] for item in inbox.to(email)
    ]


def _subjects(inbox, email) -> list[str]:
    return [item.message["Subject"] for item in inbox.to(email)]


def test_weekly_digest_reaches_three_time_zones_at_their_local_hour_once(auto_app, session, inbox):
    for email, zone in [
        ("tokyo@example.org", "Asia/Tokyo"),
        ("london@example.org", ""),  # the site's zone
        ("newyork@example.org", "America/New_York"),
    ]:
        _reader(session, email, "weekly", zone=zone)
    _reader(session, "videos@example.org", "weekly", ("video",))
    titles = ["Article one", "Video one", "Article two", "Article three"]
    _notice(session, "Article one", WEDNESDAY)
    _notice(session, "Video one", WEDNESDAY + timedelta(days=1), kind="video")
    weekly = ["tokyo@example.org", "london@example.org", "newyork@example.org"]

    def received():
        return {email: len(inbox.to(email)) for email in [*weekly, "videos@example.org"]}

    with running_worker(auto_app):
        _tick(auto_app, session, MONDAY - timedelta(hours=1, minutes=1))  # Tokyo 07:59
        assert received() == dict.fromkeys(received(), 0)
        _tick(auto_app, session, MONDAY - timedelta(hours=1))  # Monday 08:00 in Tokyo
        assert received() == {**dict.fromkeys(received(), 0), "tokyo@example.org": 1}
        _notice(session, "Article two", MONDAY + timedelta(minutes=30))
        _tick(auto_app, session, MONDAY + timedelta(hours=7, minutes=59))
        assert sum(received().values()) == 1
        _tick(auto_app, session, MONDAY + timedelta(hours=8))  # 08:00 in London
        assert received() == {
            "tokyo@example.org": 1,
            "london@example.org": 1,
            "newyork@example.org": 0,
            "videos@example.org": 1,
        }
        _tick(auto_app, session, MONDAY + timedelta(hours=13))  # 08:00 in New York
        for _ in range(2):  # the same hour again: nothing new
            assert _tick(auto_app, session, MONDAY + timedelta(hours=13, minutes=5)) == 0
        assert received() == dict.fromkeys(received(), 1)

        # The next week: only what is new since each reader's own last digest.
        _notice(session, "Article three", WEDNESDAY + timedelta(days=7))
        for hours in (-1, 8, 13):
            _tick(auto_app, session, MONDAY + timedelta(days=7, hours=hours))

    assert _titles(inbox, "tokyo@example.org", titles) == [
        ["Article one", "Video one"],
        ["Article two", "Article three"],
    ]
    for email in ("london@example.org", "newyork@example.org"):
        assert _titles(inbox, email, titles) == [
            ["Article one", "Video one", "Article two"],
            ["Article three"],
        ]
    # Nothing new of their topic in the second week: no empty digest.
    assert _titles(inbox, "videos@example.org", titles) == [["Video one"]]
    assert set(_subjects(inbox, "tokyo@example.org")) == {"Health Notices: your weekly digest"}
    digests = session.execute(
        select(Campaign.slot, Campaign.status).where(Campaign.kind == CampaignKind.WEEKLY)
    ).all()
    assert sorted(digests) == [("weekly:2027-W02", "finished"), ("weekly:2027-W03", "finished")]
    skipped = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.status == "skipped")
    )
    assert skipped == 1  # the video reader's second week, recorded, not mailed


def test_notices_published_five_minutes_apart_arrive_in_one_mail(auto_app, session, inbox):
    _reader(session, "asap@example.org", "published")
    _reader(session, "videos@example.org", "published", ("video",))
    _reader(session, "weekly@example.org", "weekly")
    _notice(session, "Naltrexone for fibromyalgia", WEDNESDAY)
    _notice(session, "Gentle stretches", WEDNESDAY + timedelta(minutes=5), kind="video")
    titles = ["Naltrexone for fibromyalgia", "Gentle stretches", "Sleep hygiene"]

    with running_worker(auto_app):
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=10)) == 0  # window open
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=15)) == 1
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=20)) == 0
        _notice(session, "Sleep hygiene", WEDNESDAY + timedelta(minutes=30))
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=44)) == 0
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=45)) == 1

    assert _titles(inbox, "asap@example.org", titles) == [
        ["Naltrexone for fibromyalgia", "Gentle stretches"],
        ["Sleep hygiene"],
    ]
    assert _subjects(inbox, "asap@example.org") == [
        "Health Notices: new articles and videos",
        "New article: Sleep hygiene",
    ]
    assert _titles(inbox, "videos@example.org", titles) == [["Gentle stretches"]]
    assert inbox.to("weekly@example.org") == []
    first = inbox.to("asap@example.org")[0].message
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert session.scalars(select(Campaign.kind)).all() == ["published", "published"]


def test_a_beat_tick_delivered_twice_sends_once(auto_app, session, inbox):
    for number in range(20):
        _reader(session, f"r{number}@example.org", "published")
    _notice(session, "Naltrexone for fibromyalgia", WEDNESDAY)
    at = (WEDNESDAY + timedelta(minutes=15)).isoformat()
    results: list[int] = []
    ready = threading.Barrier(2)

    def tick() -> None:
        with auto_app.app_context():
            ready.wait()
            results.append(tasks.plan_automatic_sends.apply(args=[at]).get())

    with running_worker(auto_app):
        threads = [threading.Thread(target=tick) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _settled(session)
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=16)) == 0

    assert sorted(results) == [0, 1]  # the second saw the first one's work done
    assert session.scalar(select(func.count()).select_from(Campaign)) == 1
    assert len(inbox.messages) == 20
    assert len({item.rcpt_tos[0] for item in inbox.messages}) == 20


def test_a_tick_whose_worker_died_after_planning_is_sent_once_by_the_beat(auto_app, session, inbox):
    _reader(session, "asap@example.org", "published")
    _notice(session, "Naltrexone for fibromyalgia", WEDNESDAY)
    # Planned and committed, then the process died before it queued the sending.
    schedule = automatic.Schedule.from_settings(auto_app.extensions["mailer.settings"])
    [campaign_id] = automatic.plan_due(session, schedule, now=WEDNESDAY + timedelta(minutes=15))
    session.commit()
    with running_worker(auto_app):
        with auto_app.app_context():  # the beat's restart of stalled campaigns
            tasks.start_due_campaigns.apply().get()
        _settled(session)
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=16)) == 0
    assert len(inbox.to("asap@example.org")) == 1
    assert session.get(Campaign, campaign_id).status == "finished"


def test_changing_frequency_mid_week_gets_each_notice_exactly_once(auto_app, session, inbox):
    switcher = _reader(session, "switcher@example.org", "weekly")
    reverse = _reader(session, "reverse@example.org", "published")
    titles = ["Article zero", "Article one", "Article two"]

    def choose(subscriber_id: int, frequency: str) -> None:
        preferences.update(
            session,
            subscriber_id,
            preferences.Choices(topics=ALL, frequency=frequency, name="", time_zone=""),
            now=clock.now(),
        )
        session.commit()

    with running_worker(auto_app):
        _notice(session, "Article zero", WEDNESDAY)
        _tick(auto_app, session, WEDNESDAY + timedelta(minutes=15))
        _tick(auto_app, session, MONDAY + timedelta(hours=8))  # the weekly digest
        _notice(session, "Article one", MONDAY + timedelta(days=1, hours=10))
        _tick(auto_app, session, MONDAY + timedelta(days=1, hours=10, minutes=15))
        # Wednesday: each changes their mind.
        choose(switcher, "published")
        choose(reverse, "weekly")
        _notice(session, "Article two", MONDAY + timedelta(days=3, hours=10))
        _tick(auto_app, session, MONDAY + timedelta(days=3, hours=10, minutes=15))
        _tick(auto_app, session, MONDAY + timedelta(days=7, hours=8))  # next weekly digest

    assert _titles(inbox, "switcher@example.org", titles) == [
        ["Article zero"],  # the weekly digest
        ["Article one", "Article two"],  # as published, from the first one after the change
    ]
    assert _titles(inbox, "reverse@example.org", titles) == [
        ["Article zero"],
        ["Article one"],
        ["Article two"],  # the weekly digest leaves out what it had as published
    ]


def test_a_webinar_reminder_goes_once_to_those_who_asked_for_webinars(auto_app, session, inbox):
    _reader(session, "asap@example.org", "published", ("webinar",))
    _reader(session, "weekly@example.org", "weekly", ("article", "webinar"), zone="Asia/Tokyo")
    _reader(session, "articles@example.org", "published", ("article",))
    starts = datetime(2027, 1, 9, 17, 0, tzinfo=UTC)
    webinar = _notice(
        session,
        "Sleep and pain",
        WEDNESDAY,
        kind="webinar",
        starts_at=starts,
        duration_minutes=45,
        join_url="https://meet.example/sleep",
    )
    # Announced two hours before it starts: the announcement is its reminder.
    _notice(
        session,
        "Late webinar",
        starts - timedelta(hours=2),
        kind="webinar",
        starts_at=starts + timedelta(hours=1),
        duration_minutes=30,
    )

    with running_worker(auto_app):
        _tick(auto_app, session, WEDNESDAY + timedelta(minutes=15))  # the announcement
        before = starts - timedelta(hours=24)
        assert _tick(auto_app, session, before - timedelta(minutes=1)) == 0
        assert _tick(auto_app, session, before) == 1
        assert _tick(auto_app, session, before + timedelta(minutes=5)) == 0
        _tick(auto_app, session, starts - timedelta(hours=1, minutes=45))  # "Late webinar"

    assert _subjects(inbox, "asap@example.org") == [
        "Webinar: Sleep and pain",
        "Reminder: Sleep and pain",
        "Webinar: Late webinar",
    ]
    assert _subjects(inbox, "weekly@example.org") == ["Reminder: Sleep and pain"]
    assert inbox.to("articles@example.org") == []
    reminder = inbox.to("weekly@example.org")[0].message
    assert "starts in about 24 hours" in text_part(reminder)
    assert "Sunday 10 January 2027, 02:00 (JST)" in text_part(reminder)
    [invite] = list(reminder.iter_attachments())
    assert invite.get_content_type() == "text/calendar"
    slots = session.scalars(select(Campaign.slot).where(Campaign.kind == "reminder")).all()
    assert slots == [f"reminder:{webinar}"]


def _cli(app, *args: str):
    return CliRunner().invoke(main, ["auto", *args], obj=ScriptInfo(create_app=lambda: app))


def test_pause_stops_automatic_sends_and_resume_continues(auto_app, session, inbox):
    import json

    _reader(session, "asap@example.org", "published")
    _notice(session, "Naltrexone for fibromyalgia", WEDNESDAY)

    paused = _cli(auto_app, "pause")
    assert paused.exit_code == 0, paused.output
    assert "Automatic sending is paused since" in paused.output
    assert _tick(auto_app, session, WEDNESDAY + timedelta(hours=1)) == 0
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0
    status = json.loads(_cli(auto_app, "status", "--json").output)
    assert status["paused"] is True and status["changed_by"].startswith("cli")

    resumed = _cli(auto_app, "resume")
    assert resumed.exit_code == 0 and "Automatic sending is on." in resumed.output
    # Planned while running; paused before any worker got to it; resumed.
    assert _tick_without_worker(auto_app, WEDNESDAY + timedelta(hours=2)) == 1
    assert _cli(auto_app, "pause").exit_code == 0
    session.expire_all()
    [campaign] = session.scalars(select(Campaign)).all()
    assert campaign.status == "paused"
    with running_worker(auto_app):
        with auto_app.app_context():
            get_jobs().start_sending(campaign.id)  # a stray chain: it finds the campaign paused
        assert _cli(auto_app, "resume").exit_code == 0
        _settled(session)
    assert _titles(inbox, "asap@example.org", ["Naltrexone for fibromyalgia"]) == [
        ["Naltrexone for fibromyalgia"]
    ]
    session.expire_all()
    assert session.get(Campaign, campaign.id).status == "finished"
    shown = _cli(auto_app, "status").output
    assert "Automatic sending is on." in shown and f"campaign {campaign.id:>5}  published" in shown


def _tick_without_worker(app, at: datetime) -> int:
    with app.app_context():
        return tasks.plan_automatic_sends.apply(args=[at.isoformat()]).get()


def test_global_resume_leaves_a_campaign_an_editor_paused(auto_app, session):
    _reader(session, "asap@example.org", "published")
    for minute in (0, 30):
        _notice(session, f"Notice {minute}", WEDNESDAY + timedelta(minutes=minute))
    first = _tick_without_worker(auto_app, WEDNESDAY + timedelta(minutes=15))
    second = _tick_without_worker(auto_app, WEDNESDAY + timedelta(minutes=45))
    assert (first, second) == (1, 1)
    earlier, later = session.scalars(select(Campaign.id).order_by(Campaign.id)).all()
    # an editor pauses the first by hand
    campaigns.set_paused(session, earlier, paused=True, now=clock.now())
    session.commit()
    automatic.pause(session, now=WEDNESDAY, by="admin@example.org")
    session.commit()
    assert automatic.resume(session, now=WEDNESDAY, by="admin@example.org") == [later]
    session.commit()
    statuses = dict(session.execute(select(Campaign.id, Campaign.status)).all())
    assert statuses == {earlier: "paused", later: "sending"}


def test_an_automatic_send_cannot_be_deleted_so_nobody_gets_it_again(auto_app, session):
    from mailer.errors import CampaignStateConflict

    _reader(session, "asap@example.org", "published")
    first = _notice(session, "Naltrexone for fibromyalgia", WEDNESDAY)
    assert _tick_without_worker(auto_app, WEDNESDAY + timedelta(minutes=15)) == 1
    campaign_id = session.scalars(select(Campaign.id)).one()
    campaigns.cancel_campaign(session, campaign_id, now=WEDNESDAY)
    session.commit()
    with pytest.raises(CampaignStateConflict, match="automatic send cannot be deleted"):
        campaigns.delete_campaign(session, campaign_id)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Delivery)) == 1
    # Cancelled for good: the notice is not sent again in a later mail either.
    second = _notice(session, "Gentle stretches", WEDNESDAY + timedelta(hours=1))
    assert _tick_without_worker(auto_app, WEDNESDAY + timedelta(hours=2)) == 1
    notice_ids = session.scalars(select(Delivery.notice_ids).order_by(Delivery.id)).all()
    assert notice_ids == [str(first), str(second)]


def test_old_entries_of_a_feed_just_added_are_not_announced(auto_app, session, inbox):
    _reader(session, "asap@example.org", "published")
    _reader(session, "weekly@example.org", "weekly")
    for days in (30, 10):  # what a new feed brings in at its first poll
        notices.create_notice(
            session,
            notices.NoticeDraft(
                kind="article",
                title=f"From {days} days ago",
                url=f"https://site.example/{days}",
                published_at=WEDNESDAY - timedelta(days=days),
            ),
            source="feed",
            now=WEDNESDAY,
        )
    _notice(session, "Imported a day late", WEDNESDAY + timedelta(minutes=1))
    session.commit()
    with running_worker(auto_app):
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=15)) == 1
        assert _tick(auto_app, session, MONDAY + timedelta(hours=8)) == 1
    titles = ["From 30 days ago", "From 10 days ago", "Imported a day late"]
    for email in ("asap@example.org", "weekly@example.org"):
        assert _titles(inbox, email, titles) == [["Imported a day late"]]


def test_a_list_that_had_notices_before_gets_only_new_ones(auto_app, session, inbox):
    # What migration 0008 records on a list that already has notices.
    _reader(session, "asap@example.org", "published")
    _notice(session, "From the archive", WEDNESDAY - timedelta(days=1))
    session.add(AutomaticSending(id=1, notices_since=WEDNESDAY, published_until=WEDNESDAY))
    session.commit()
    _notice(session, "Brand new", WEDNESDAY + timedelta(minutes=1))
    with running_worker(auto_app):
        assert _tick(auto_app, session, WEDNESDAY + timedelta(minutes=20)) == 1
    assert _titles(inbox, "asap@example.org", ["From the archive", "Brand new"]) == [["Brand new"]]


def test_automatic_sends_go_out_through_a_real_worker(make_app, inbox):
    app = make_app(send_rate=0, site_time_zone="Europe/London")
    with app.extensions["mailer.sessionmaker"]() as session:
        _reader(session, "asap@example.org", "published")
        _reader(session, "weekly@example.org", "weekly", zone="Asia/Tokyo")
        _notice(session, "Article one", WEDNESDAY)
        _notice(session, "Article two", WEDNESDAY + timedelta(minutes=5))
        with running_worker(app):
            assert _tick(app, session, WEDNESDAY + timedelta(minutes=15)) == 1
            assert _tick(app, session, WEDNESDAY + timedelta(minutes=15)) == 0
            assert _tick(app, session, MONDAY - timedelta(hours=1)) == 1  # 08:00 in Tokyo
            assert _tick(app, session, MONDAY) == 0
    both = [["Article one", "Article two"]]
    assert _titles(inbox, "asap@example.org", ["Article one", "Article two"]) == both
    assert _titles(inbox, "weekly@example.org", ["Article one", "Article two"]) == both


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAILER_DIGEST_HOUR", "24", "must be an hour from 0 to 23"),
        ("MAILER_DIGEST_WEEKDAY", "funday", "must be one of monday"),
        ("MAILER_PUBLISH_WINDOW_MINUTES", "soon", "could not convert"),
        ("MAILER_REMINDER_HOURS", "-1", "must not be negative"),
    ],
)
def test_malformed_automatic_settings_stop_start_up_naming_the_variable(name, value, message):
    required = {
        "MAILER_SECRET_KEY": "env-test-key-2d4f6a8c0e1b3d5f-7a9c1e3b5d7f",
        "MAILER_BASE_URL": "https://news.example.com",
        "MAILER_FROM": "Notices <n@example.com>",
        "MAILER_POSTAL_ADDRESS": "1 Street",
    }
    with pytest.raises(SettingsError, match=name) as error:
        Settings.from_env({**required, name: value})
    assert message in str(error.value)


def test_a_digest_a_worker_finished_meanwhile_is_reopened_for_later_readers(auto_app, session):
    """The planner's campaign may predate a worker finishing it; it is read again, locked."""
    reader = _reader(session, "newyork@example.org", "weekly", zone="America/New_York")
    digest = Campaign(
        kind=CampaignKind.WEEKLY,
        slot="weekly:2027-W02",
        subject="This week",
        topics="article,video,webinar",
        status="sending",
        created_at=MONDAY,
        started_at=MONDAY,
    )
    session.add(digest)
    session.commit()
    assert digest.status == "sending"  # what the planner holds from its first read
    with auto_app.extensions["mailer.sessionmaker"]() as worker:  # the last batch's record
        worker.get_one(Campaign, digest.id).status = "finished"
        worker.commit()

    session.add(Delivery(campaign_id=digest.id, subscriber_id=reader, notice_ids="1"))
    started = automatic._settle(session, digest, 1, now=MONDAY + timedelta(hours=13))
    session.commit()

    assert started == [digest.id]
    assert session.scalar(select(Campaign.status).where(Campaign.id == digest.id)) == "sending"
