"""Notices and feeds in the console: list, create, edit, delete, add a feed; all audited."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import select

from mailer import campaigns, clock, notices
from mailer.models import AuditEntry, Feed, Notice
from tests.admin_helpers import post, signed_in

ARTICLE = {
    "kind": "article",
    "title": "Naltrexone for Fibromyalgia",
    "url": "https://site.example/n",
}


def _notices(app: Flask) -> list[Notice]:
    with app.extensions["mailer.sessionmaker"]() as session:
        return list(session.scalars(select(Notice).order_by(Notice.id)))


def _actions(app: Flask) -> list[tuple[str, str, str]]:
    with app.extensions["mailer.sessionmaker"]() as session:
        rows = session.execute(
            select(AuditEntry.action, AuditEntry.target, AuditEntry.detail).order_by(AuditEntry.id)
        )
        return [tuple(row) for row in rows if row[0] != "login"]


def test_create_a_notice_and_see_it_listed(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    answer = post(client, "/admin/notices/new", {**ARTICLE, "summary": "What the trials say."})
    assert answer.status_code == 303
    [notice] = _notices(app)
    assert (notice.kind, notice.title, notice.source, notice.summary) == (
        "article",
        "Naltrexone for Fibromyalgia",
        "admin",
        "What the trials say.",
    )
    page = client.get("/admin/notices").get_data(as_text=True)
    assert f"Notice {notice.id} saved." in page and "Naltrexone for Fibromyalgia" in page
    assert _actions(app) == [("notice.create", f"notice {notice.id}", ARTICLE["title"])]


def test_a_webinar_time_is_read_in_its_own_zone(app: Flask) -> None:
    client = signed_in(app)
    answer = post(
        client,
        "/admin/notices/new",
        {
            "kind": "webinar",
            "title": "Sleep and pain",
            "url": "https://site.example/w",
            "starts_at": "2026-12-03T17:00",
            "duration_minutes": "45",
            "time_zone": "Europe/Berlin",
        },
    )
    assert answer.status_code == 303
    [webinar] = _notices(app)
    assert webinar.starts_at == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    assert webinar.duration_minutes == 45
    form = client.get(f"/admin/notices/{webinar.id}/edit").get_data(as_text=True)
    assert 'value="2026-12-03T17:00"' in form  # shown back in the webinar's zone


def test_a_bad_notice_shows_the_error_beside_the_field_and_keeps_the_input(app: Flask) -> None:
    client = signed_in(app)
    cases = [
        ({**ARTICLE, "title": "  "}, "title", "title is required"),
        ({**ARTICLE, "url": "javascript:alert(1)"}, "url", "url must be an http(s) URL"),
        ({**ARTICLE, "kind": "webinar"}, "starts_at", "a webinar needs starts_at"),
        ({**ARTICLE, "published_at": "yesterday"}, "published_at", "is not a date and time"),
        (
            {
                **ARTICLE,
                "kind": "webinar",
                "starts_at": "2026-12-03T17:00",
                "duration_minutes": "lots",
            },
            "duration_minutes",
            "whole number",
        ),
    ]
    for form, field, message in cases:
        answer = post(client, "/admin/notices/new", {**form, "summary": "Kept summary"})
        assert answer.status_code == 400, form
        page = answer.get_data(as_text=True)
        assert message in page
        assert f'id="{field}" name="{field}"' in page
        assert f'aria-describedby="{field}-error"' in page, field
        assert "Kept summary" in page
    assert _notices(app) == [] and _actions(app) == []


def test_edit_a_notice(app: Flask) -> None:
    client = signed_in(app)
    post(client, "/admin/notices/new", ARTICLE)
    [notice] = _notices(app)
    form = client.get(f"/admin/notices/{notice.id}/edit").get_data(as_text=True)
    assert 'value="Naltrexone for Fibromyalgia"' in form
    answer = post(
        client,
        f"/admin/notices/{notice.id}/edit",
        {**ARTICLE, "title": "Low-dose naltrexone", "kind": "video"},
    )
    assert answer.status_code == 303
    [edited] = _notices(app)
    assert (edited.title, edited.kind, edited.published_at) == (
        "Low-dose naltrexone",
        "video",
        notice.published_at,
    )
    bad = post(client, f"/admin/notices/{notice.id}/edit", {**ARTICLE, "url": "ftp://x"})
    assert bad.status_code == 400
    assert _notices(app)[0].url == ARTICLE["url"]  # the bad edit changed nothing
    assert client.get("/admin/notices/999/edit").status_code == 404
    assert _actions(app)[-1] == ("notice.edit", f"notice {notice.id}", "Low-dose naltrexone")


def test_delete_a_notice_unless_a_campaign_uses_it(app: Flask) -> None:
    client = signed_in(app)
    with app.extensions["mailer.sessionmaker"]() as session:
        kept = notices.create_notice(
            session, notices.NoticeDraft(**ARTICLE), source="cli", now=clock.now()
        )
        spare = notices.create_notice(
            session,
            notices.NoticeDraft("video", "Spare", "https://site.example/s"),
            source="cli",
            now=clock.now(),
        )
        campaigns.create_campaign(session, subject="Used", notice_ids=[kept], now=clock.now())
        session.commit()
    refused = post(client, f"/admin/notices/{kept}/delete", follow_redirects=True)
    assert f"notice {kept} is part of campaign 1" in refused.get_data(as_text=True)
    deleted = post(client, f"/admin/notices/{spare}/delete", follow_redirects=True)
    assert f"Notice {spare} deleted." in deleted.get_data(as_text=True)
    assert [notice.id for notice in _notices(app)] == [kept]
    assert _actions(app) == [("notice.delete", f"notice {spare}", "Spare")]


def test_feeds_show_their_last_poll_imports_and_error(app: Flask) -> None:
    client = signed_in(app, "admin", "boss@example.com")  # adding feeds is for admins
    answer = post(client, "/admin/feeds", {"url": "https://site.example/feed.xml", "kind": "video"})
    assert answer.status_code == 303
    page = client.get("/admin/feeds").get_data(as_text=True)
    assert "https://site.example/feed.xml" in page and "not yet" in page
    with app.extensions["mailer.sessionmaker"]() as session:
        feed = session.scalars(select(Feed)).one()
        feed.last_polled_at = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
        feed.imported_count = 12
        feed.last_error = "HTTP 404 Not Found"
        session.commit()
    page = client.get("/admin/feeds").get_data(as_text=True)
    assert "2026-11-24 09:30 UTC" in page and ">12<" in page and "HTTP 404 Not Found" in page
    assert _actions(app) == [("feed.add", "feed 1", "https://site.example/feed.xml")]


def test_a_bad_or_repeated_feed_is_refused_with_the_reason(app: Flask) -> None:
    client = signed_in(app)
    post(client, "/admin/feeds", {"url": "https://site.example/feed.xml", "kind": "article"})
    for url, message in (
        ("file:///etc/passwd", "url must be an http(s) URL"),
        ("https://site.example/feed.xml", "is already feed 1"),
    ):
        answer = post(client, "/admin/feeds", {"url": url, "kind": "article"})
        assert answer.status_code == 400
        page = answer.get_data(as_text=True)
        assert message in page and f'value="{url}"' in page
    with app.extensions["mailer.sessionmaker"]() as session:
        assert len(session.scalars(select(Feed)).all()) == 1
