"""Campaigns in the console (test client): compose, live audience, preview, test, schedule,
start, pause, resume, cancel, resend, progress JSON, report. The browser test sends one."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from mailer import clock, notices
from mailer.models import AuditEntry, Campaign, Delivery, Subscriber
from tests.admin_helpers import post, signed_in
from tests.helpers import add_confirmed, html_part, wait_until
from tests.smtp_sink import Inbox


def _notice(app: Flask, kind: str = "article", title: str = "Naltrexone for Fibromyalgia") -> int:
    with app.extensions["mailer.sessionmaker"]() as session:
        notice_id = notices.create_notice(
            session,
            notices.NoticeDraft(kind, title, f"https://site.example/{kind}"),
            source="cli",
            now=clock.now(),
        )
        session.commit()
        return notice_id


def _readers(app: Flask) -> None:
    """Three article readers, two video-only readers, one webinar-only reader."""
    with app.extensions["mailer.sessionmaker"]() as session:
        for number in range(3):
            add_confirmed(session, f"all{number}@example.org")
        for number in range(2):
            add_confirmed(session, f"video{number}@example.org", ("video",))
        add_confirmed(session, "webinar@example.org", ("webinar",))
        session.commit()


def _compose(client: FlaskClient, notice_ids: list[int], **fields: object):
    data = {"subject": "New this week", "notices": [str(i) for i in notice_ids], **fields}
    data.setdefault("topics", ["article", "video", "webinar"])
    return post(client, "/admin/campaigns/new", data)


def _campaign(app: Flask, campaign_id: int = 1) -> Campaign:
    with app.extensions["mailer.sessionmaker"]() as session:
        return session.get_one(Campaign, campaign_id)


def _actions(app: Flask) -> list[str]:
    with app.extensions["mailer.sessionmaker"]() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_compose_saves_a_draft_and_audits_it(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    article = _notice(app)
    form = client.get("/admin/campaigns/new").get_data(as_text=True)
    assert "Naltrexone for Fibromyalgia" in form and 'id="audience-count"' in form
    answer = _compose(client, [article], intro="Hello all", topics=["article", "video"])
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/campaigns/1"
    campaign = _campaign(app)
    assert (campaign.subject, campaign.intro, campaign.topics, campaign.status) == (
        "New this week",
        "Hello all",
        "article,video",
        "draft",
    )
    page = client.get("/admin/campaigns/1").get_data(as_text=True)
    assert "Start sending now" in page and "Send a test" in page
    assert _actions(app) == ["login", "campaign.create"]


def test_compose_refuses_bad_input_keeps_it_and_saves_nothing(app: Flask) -> None:
    client = signed_in(app)
    article = _notice(app)
    past = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    for fields, message in (
        ({"notices": []}, "a campaign needs at least one notice"),
        ({"subject": "  "}, "the subject is required"),
        ({"send_at": "next tuesday"}, "is not a date and time"),
        ({"send_at": past}, "the send time is in the past"),
    ):
        data = {"subject": "Kept subject", "intro": "Kept intro", **fields}
        answer = _compose(client, fields.pop("notices", [article]), **data)  # type: ignore[arg-type]
        assert answer.status_code == 400, fields
        page = answer.get_data(as_text=True)
        assert message in page
        assert "Kept intro" in page
    with app.extensions["mailer.sessionmaker"]() as session:
        assert session.scalars(select(Campaign)).all() == []
    assert _actions(app) == ["login"]


def test_compose_with_a_send_time_schedules_it_in_the_site_zone(app: Flask) -> None:
    client = signed_in(app)
    article = _notice(app)
    soon = datetime.now(UTC) + timedelta(days=3)
    answer = _compose(client, [article], send_at=soon.strftime("%Y-%m-%dT%H:%M"))
    assert answer.status_code == 303
    campaign = _campaign(app)
    assert campaign.status == "scheduled"
    assert campaign.send_at == soon.replace(second=0, microsecond=0)
    unscheduled = post(client, "/admin/campaigns/1/schedule", {"send_at": ""})
    assert unscheduled.status_code == 303
    assert (_campaign(app).status, _campaign(app).send_at) == ("draft", None)
    assert _actions(app)[-2:] == ["campaign.create", "campaign.schedule"]


def test_the_audience_count_follows_topics_and_the_notices_kinds(app: Flask) -> None:
    client = signed_in(app)
    _readers(app)
    article, video = _notice(app), _notice(app, "video", "A video")

    def count(**query: list) -> int:
        return client.get("/admin/campaigns/audience", query_string=query).get_json()["recipients"]

    # No notice ticked: nobody would get anything (issue 14: it said 6 here).
    assert count(topics=["article", "video", "webinar"]) == 0
    assert count(topics=["video"]) == 0
    assert count(topics=["article", "video", "webinar"], notices=[article]) == 3
    assert count(topics=["article", "video", "webinar"], notices=[article, video]) == 5
    assert count(topics=["webinar"], notices=[article]) == 0
    form = client.get(f"/admin/campaigns/new?notices={article}").get_data(as_text=True)
    assert re.search(r'id="audience-count" for="compose">3</output>', form)


def test_preview_shows_html_in_a_sandbox_text_and_phone_width(app: Flask) -> None:
    client = signed_in(app)
    _compose(client, [_notice(app)], intro="Dear readers")
    page = client.get("/admin/campaigns/1/preview").get_data(as_text=True)
    assert page.count("<iframe") == 2 and page.count(" sandbox ") == 2
    assert 'class="mail-frame phone"' in page
    assert "Naltrexone for Fibromyalgia" in page and "Dear readers" in page  # the text part
    frame = client.get("/admin/campaigns/1/preview.html")
    assert "Naltrexone for Fibromyalgia" in frame.get_data(as_text=True)
    policy = frame.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy and "script" not in policy
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_send_a_test_to_an_address(app: Flask, inbox: Inbox, worker: None) -> None:
    """Queued for the worker (no SMTP inside a web request), which audits the relay's answer."""
    client = signed_in(app)
    _compose(client, [_notice(app)])
    answer = post(
        client, "/admin/campaigns/1/test", {"to": "Me@Example.org"}, follow_redirects=True
    )
    assert "Test on its way to me@example.org" in answer.get_data(as_text=True)
    [received] = inbox.wait_for("me@example.org")
    assert received.message["Subject"] == "[Test] New this week"
    assert "Naltrexone for Fibromyalgia" in html_part(received.message)
    refused = post(
        client, "/admin/campaigns/1/test", {"to": "not-an-address"}, follow_redirects=True
    )
    assert "Test not sent:" in refused.get_data(as_text=True)
    assert len(inbox.messages) == 1
    wait_until(lambda: _actions(app)[-1] == "campaign.test")
    with app.extensions["mailer.sessionmaker"]() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.actor, entry.detail) == (
        "boss@example.com",
        "to …@example.org: sent",
    )  # no address in the log
    assert _campaign(app).status == "draft"  # a test starts nothing


def test_start_pause_resume_cancel_and_the_progress_json(app: Flask) -> None:
    """Without a worker the deliveries stay queued: the states and counts are what is checked.

    The video and webinar readers are not planned: the digest holds only an article.
    """
    client = signed_in(app)
    _readers(app)
    _compose(client, [_notice(app)])
    wrong = post(client, "/admin/campaigns/1/pause", follow_redirects=True)
    assert "Not done: cannot pause a campaign that is draft." in wrong.get_data(as_text=True)

    started = post(client, "/admin/campaigns/1/start", follow_redirects=True)
    page = started.get_data(as_text=True)
    assert "Sending to 3 recipients." in page
    assert 'id="progress-bar" max="100" value="0"' in page
    state = client.get("/admin/campaigns/1/progress.json").get_json()
    assert (state["status"], state["total"], state["pending"], state["percent"]) == (
        "sending",
        3,
        3,
        0,
    )
    post(client, "/admin/campaigns/1/pause")
    assert client.get("/admin/campaigns/1/progress.json").get_json()["status"] == "paused"
    post(client, "/admin/campaigns/1/resume")
    assert _campaign(app).status == "sending"
    post(client, "/admin/campaigns/1/cancel")
    state = client.get("/admin/campaigns/1/progress.json").get_json()
    assert (state["status"], state["skipped"], state["pending"], state["percent"]) == (
        "cancelled",
        3,
        0,
        100,
    )
    assert _actions(app)[2:] == [
        "campaign.start",
        "campaign.pause",
        "campaign.resume",
        "campaign.cancel",
    ]
    assert client.get("/admin/campaigns/9/progress.json").status_code == 404
    assert post(client, "/admin/campaigns/1/explode").status_code == 404


def test_report_lists_failures_and_resend_failed_queues_them_again(app: Flask) -> None:
    client = signed_in(app)
    _readers(app)
    _compose(client, [_notice(app)])
    post(client, "/admin/campaigns/1/start")
    with app.extensions["mailer.sessionmaker"]() as session:
        first, *rest = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
        failed_address = session.scalar(
            select(Subscriber.email).where(
                Subscriber.id == Delivery.subscriber_id, Delivery.id == first
            )
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id == first)
            .values(status="failed", attempts=5, last_error="451 4.3.0 mailbox busy")
        )
        session.execute(update(Delivery).where(Delivery.id.in_(rest)).values(status="sent"))
        session.execute(update(Campaign).values(status="finished", finished_at=clock.now()))
        session.commit()
    page = client.get("/admin/campaigns/1").get_data(as_text=True)
    assert "451 4.3.0 mailbox busy" in page and f">{failed_address}<" in page
    assert 'id="count-sent">2<' in page and 'id="count-failed">1<' in page
    assert 'id="progress-bar" max="100" value="100"' in page
    answer = post(client, "/admin/campaigns/1/resend-failed", follow_redirects=True)
    assert "1 failed deliveries queued again." in answer.get_data(as_text=True)
    assert client.get("/admin/campaigns/1/progress.json").get_json()["pending"] == 1
    listing = client.get("/admin/campaigns").get_data(as_text=True)
    assert "New this week" in listing


def test_a_draft_cancelled_before_the_start_says_nobody_got_it(app: Flask) -> None:
    client = signed_in(app)
    _compose(client, [_notice(app)])
    page = post(client, "/admin/campaigns/1/cancel", follow_redirects=True).get_data(as_text=True)
    assert "Cancelled: nothing more is sent." in page
    assert "before it was sent: nobody got it." in page
    assert "Start sending now" not in page and 'id="progress"' not in page
    again = post(client, "/admin/campaigns/1/start", follow_redirects=True)
    assert "Not done: cannot start a campaign that is cancelled." in again.get_data(as_text=True)


def test_automatic_sending_is_paused_and_resumed_from_the_console(app: Flask) -> None:
    from mailer import automatic

    client = signed_in(app, "editor", "ed@example.com")
    page = client.get("/admin/campaigns").get_data(as_text=True)
    assert "Pause all automatic sending" in page

    paused = post(client, "/admin/automatic/pause", follow_redirects=True)
    text = paused.get_data(as_text=True)
    assert "Automatic sending paused." in text and "Resume automatic sending" in text
    with app.extensions["mailer.sessionmaker"]() as session:
        state = automatic.status(session, latest=0)
    assert (state.paused, state.changed_by) == (True, "ed@example.com")

    resumed = post(client, "/admin/automatic/resume", follow_redirects=True)
    assert "Automatic sending resumed." in resumed.get_data(as_text=True)
    with app.extensions["mailer.sessionmaker"]() as session:
        assert automatic.status(session, latest=0).paused is False
    assert _actions(app)[-2:] == ["automatic.pause", "automatic.resume"]
    assert post(client, "/admin/automatic/explode").status_code == 404
