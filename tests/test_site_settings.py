"""Site settings: the console's changes over MAILER_*, in force for the next mail and page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from mailer import campaigns, clock, site
from mailer.errors import InvalidSiteSettings, SiteNotReady
from mailer.models import AuditEntry, Campaign, Notice, SiteSetting
from tests.admin_helpers import post, signed_in
from tests.conftest import running_worker
from tests.helpers import add_confirmed, html_part, post_signup, run_campaign, text_part

PLACEHOLDER = "Set MAILER_POSTAL_ADDRESS"


def _notice(session, title: str = "Naltrexone for Fibromyalgia") -> int:
    now = clock.now()
    notice = Notice(
        kind="article",
        title=title,
        url="https://site.example/n",
        source="admin",
        published_at=now,
        created_at=now,
    )
    session.add(notice)
    session.flush()
    return notice.id


def _save(client, **values: str):
    form = {field: values.get(field, "") for field in site.FIELDS}
    form.update({"site_name": values.get("site_name", "Health Notices"), "automatic": "on"})
    form["default_topics"] = values.get("default_topics", "article,video,webinar").split(",")
    form["default_frequency"] = values.get("default_frequency", "published")
    return post(client, "/admin/settings", form)


def _actions(session) -> list[AuditEntry]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_a_saved_setting_reaches_the_next_mail_and_page(app: Flask, session, inbox) -> None:
    client = signed_in(app)
    answer = _save(
        client,
        site_name="Pain Research News",
        postal_address="12 Harbour Road\nBristol BS1 5TT\nUnited Kingdom",
        brand_colour="#7a1f5c",
        from_name="Pain Research",
        from_address="news@mailer.test",
        home_url="https://pain.example/",
    )
    assert answer.status_code == 303
    assert "Saved: site name, home page, postal address" in client.get("/admin/settings").text
    page = app.test_client().get("/").text
    assert "Pain Research News &middot; 12 Harbour Road, Bristol BS1 5TT, United Kingdom" in page
    assert 'href="https://pain.example/"' in page

    add_confirmed(session, "ann@example.org", ("article",))
    notice = _notice(session)
    with running_worker(app):
        run_campaign(app, session, [notice])
    [received] = inbox.wait_for("ann@example.org")
    mail = received.message
    assert mail["From"] == "Pain Research <news@mailer.test>"
    assert "Pain Research News · 12 Harbour Road, Bristol BS1 5TT, United Kingdom" in text_part(
        mail
    )
    assert "background: #7a1f5c" in html_part(mail).replace("background-color", "background")
    assert mail["List-Id"] == "Pain Research News <notices.mailer.test>"
    # The audit names what changed, never the values (an address can be a person's home).
    [entry] = [row for row in _actions(session) if row.action == "site.settings"]
    assert entry.detail.startswith("changed site_name, home_url, postal_address")
    assert "Harbour" not in entry.detail


def test_a_worker_picks_up_a_change_between_two_campaigns(app: Flask, session, inbox) -> None:
    add_confirmed(session, "ann@example.org", ("article",))
    first, second = _notice(session, "First"), _notice(session, "Second")
    with running_worker(app):
        run_campaign(app, session, [first], subject="One")
        site.save(
            session,
            app.extensions["mailer.settings"],
            {"site_name": "Renamed"},
            by="test",
            now=clock.now(),
        )
        session.commit()
        run_campaign(app, session, [second], subject="Two")
    mails = inbox.wait_for("ann@example.org", count=2)
    footers = [text_part(item.message).rsplit("\n", 2)[-2] for item in mails]
    assert footers[0].startswith("Health Notices ·") and footers[1].startswith("Renamed ·")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("brand_colour", "#f0e68c", "pick a darker colour"),
        ("from_address", "news@elsewhere.example", "must be an address at mailer.test"),
        ("home_url", "javascript:alert(1)", "full http(s) address"),
        ("site_name", "", "needs a name"),
        ("default_topics", "", "tick at least one topic"),
    ],
)
def test_a_bad_setting_is_refused_beside_its_field_and_nothing_changes(
    app: Flask, session, field: str, value: str, words: str
) -> None:
    client = signed_in(app)
    answer = _save(client, postal_address="1 Real Street", **{field: value})
    assert answer.status_code == 400
    assert words in answer.text and 'role="alert"' in answer.text
    if field != "default_topics":  # the field itself is marked, for a screen reader
        assert 'aria-invalid="true"' in answer.text
    assert session.get(SiteSetting, 1) is None  # not even the good fields were written
    with pytest.raises(InvalidSiteSettings):
        site.save(
            session, app.extensions["mailer.settings"], {field: value}, by="t", now=clock.now()
        )


def test_without_a_postal_address_nothing_starts_and_the_message_says_where(
    make_app, session, inbox
) -> None:
    app = make_app(postal_address="")
    client = signed_in(app)
    assert "Nothing can be sent yet" in client.get("/admin/").text
    assert PLACEHOLDER not in app.test_client().get("/").text
    add_confirmed(session, "ann@example.org", ("article",))
    campaign_id = campaigns.create_campaign(
        session, subject="Hello", notice_ids=[_notice(session)], now=clock.now()
    )
    session.commit()

    answer = post(client, f"/admin/campaigns/{campaign_id}/start", follow_redirects=True)
    assert "Site settings page (/admin/settings)" in answer.text
    later = (clock.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    post(client, f"/admin/campaigns/{campaign_id}/schedule", {"send_at": later})
    session.expire_all()
    assert session.get(Campaign, campaign_id).status == "draft"
    with pytest.raises(SiteNotReady, match="CAN-SPAM"):
        campaigns.apply_action(
            session,
            campaign_id,
            "start",
            now=clock.now(),
            site=site.defaults(app.extensions["mailer.settings"]),
        )

    _save(client, postal_address="PO Box 12, Springfield")
    assert "Nothing can be sent yet" not in client.get("/admin/").text
    answer = post(client, f"/admin/campaigns/{campaign_id}/start", follow_redirects=True)
    assert "Sending to 1 recipients." in answer.text


def test_the_first_start_asks_for_the_address_and_whether_to_send_by_itself(
    make_app, session
) -> None:
    from mailer import automatic

    app = make_app(postal_address="")
    client = signed_in(app)
    page = client.get("/admin/").text
    assert "Should new notices go out by themselves?" in page
    answer = post(
        client,
        "/admin/setup",
        {"postal_address": "3 Mill Lane, Leeds", "automatic": "off"},
        follow_redirects=True,
    )
    assert "Automatic sending is off" in answer.text
    assert "Should new notices go out by themselves?" not in answer.text
    assert automatic.status(session).paused is True
    assert "3 Mill Lane, Leeds" in app.test_client().get("/").text
    assert [row.action for row in _actions(session)][-2:] == ["automatic.pause", "site.setup"]


def test_pages_and_mail_show_no_placeholder_without_an_address(make_app, session, inbox) -> None:
    app = make_app(postal_address="")
    client = app.test_client()
    for path in ("/", "/embed", "/check-inbox", "/preferences"):
        assert PLACEHOLDER not in client.get(path).text
    with running_worker(app):
        post_signup(client, app, email="new@example.org")
        [received] = inbox.wait_for("new@example.org")
    assert text_part(received.message).rstrip().endswith("Health Notices")
