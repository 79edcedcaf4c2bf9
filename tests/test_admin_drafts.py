"""Campaign drafts in the console: edit, reorder, duplicate, delete, schedule in your own zone;
the campaign list without empty automatic sends; the notice list's forecast."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select

from mailer import automatic, campaigns, clock
from mailer.models import Campaign, CampaignKind, CampaignStatus, Delivery, Subscriber
from tests.admin_helpers import post, signed_in
from tests.helpers import add_confirmed
from tests.test_admin_campaigns import _actions, _campaign, _compose, _notice


def _order(app: Flask, campaign_id: int = 1) -> list[str]:
    with app.extensions["mailer.sessionmaker"]() as session:
        return [notice.title for notice in campaigns.campaign_notices(session, campaign_id)]


def test_edit_a_draft_then_reorder_its_notices(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    first, second = _notice(app, title="First"), _notice(app, "video", "Second")
    third = _notice(app, title="Third")
    _compose(client, [first, second])
    form = client.get("/admin/campaigns/1/edit").text
    assert 'value="New this week"' in form and "Edit campaign 1" in form
    answer = post(
        client,
        "/admin/campaigns/1/edit",
        {
            "subject": "Better subject",
            "intro": "Hi all,",
            "notices": [str(second), str(third)],
            "topics": ["article", "video"],
        },
    )
    assert answer.status_code == 303
    campaign = _campaign(app)
    assert (campaign.subject, campaign.intro, campaign.topics) == (
        "Better subject",
        "Hi all,",
        "article,video",
    )
    assert _order(app) == ["Second", "Third"]  # kept ones first, new ones after

    assert post(client, f"/admin/campaigns/1/notices/{third}/up").status_code == 303
    assert _order(app) == ["Third", "Second"]
    page = client.get("/admin/campaigns/1").text
    assert "Move “Second” up" in page and "Move “Third” down" in page
    assert _actions(app)[-2:] == ["campaign.edit", "campaign.reorder"]

    refused = post(client, "/admin/campaigns/1/edit", {"subject": "", "notices": [str(third)]})
    assert refused.status_code == 400 and "the subject is required" in refused.text
    assert _campaign(app).subject == "Better subject"


def test_a_started_campaign_cannot_be_edited_but_can_be_duplicated(app: Flask) -> None:
    client = signed_in(app)
    with app.extensions["mailer.sessionmaker"]() as session:
        add_confirmed(session, "ann@example.org")
        session.commit()
    _compose(client, [_notice(app, title="One"), _notice(app, title="Two")], intro="Intro")
    post(client, "/admin/campaigns/1/start")
    assert _campaign(app).status == "sending"
    refused = post(
        client,
        "/admin/campaigns/1/edit",
        {"subject": "Changed", "notices": ["1"]},
        follow_redirects=True,
    )
    assert "cannot change any more; duplicate it instead" in refused.text
    assert post(client, "/admin/campaigns/1/delete", follow_redirects=True).status_code == 200
    assert _campaign(app).subject == "New this week"  # neither edited nor deleted

    copied = post(client, "/admin/campaigns/1/duplicate")
    assert copied.headers["Location"].endswith("/admin/campaigns/2/edit")
    copy = _campaign(app, 2)
    assert (copy.subject, copy.intro, copy.status, copy.kind) == (
        "New this week",
        "Intro",
        "draft",
        "manual",
    )
    assert _order(app, 2) == ["One", "Two"]


def test_delete_a_draft(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    _compose(client, [_notice(app)])
    answer = post(client, "/admin/campaigns/1/delete", follow_redirects=True)
    assert "Draft “New this week” deleted." in answer.text
    with app.extensions["mailer.sessionmaker"]() as session:
        assert session.get(Campaign, 1) is None
    assert _actions(app)[-1] == "campaign.delete"


def test_the_send_time_is_read_in_the_person_s_own_zone(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    client.set_cookie("console_zone", "Asia/Tokyo", path="/admin")
    page = client.get("/admin/campaigns/new").text
    assert "In your time zone, <span data-zone-name>Asia/Tokyo</span>" in page
    tomorrow = (clock.now() + timedelta(days=2)).astimezone(UTC).date()
    _compose(client, [_notice(app)], send_at=f"{tomorrow}T09:30", zone="Asia/Tokyo")
    campaign = _campaign(app)
    assert campaign.status == "scheduled"
    # 09:30 in Tokyo is 00:30 UTC.
    assert campaign.send_at.astimezone(UTC) == datetime(
        tomorrow.year, tomorrow.month, tomorrow.day, 0, 30, tzinfo=UTC
    )
    shown = client.get("/admin/campaigns/1").text
    assert re.search(
        rf"starts <strong id=\"scheduled-at\">{tomorrow} 09:30 JST \(Asia/Tokyo\)", shown
    )


def test_the_list_leaves_out_automatic_sends_that_mailed_nobody(app: Flask) -> None:
    client = signed_in(app)
    now = clock.now()
    with app.extensions["mailer.sessionmaker"]() as session:
        reader = add_confirmed(session, "ann@example.org")
        for slot, status in (("weekly:empty", "skipped"), ("weekly:real", "sent")):
            campaign = Campaign(
                subject=slot,
                topics="article",
                status=CampaignStatus.FINISHED,
                created_at=now,
                kind=CampaignKind.WEEKLY,
                slot=slot,
            )
            session.add(campaign)
            session.flush()
            session.add(Delivery(campaign_id=campaign.id, subscriber_id=reader, status=status))
        session.commit()
    page = client.get("/admin/campaigns").text
    assert "weekly:real" in page and "weekly:empty" not in page


def test_the_notice_list_says_when_each_notice_goes_out_and_to_how_many(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    with app.extensions["mailer.sessionmaker"]() as session:
        for number in range(3):
            add_confirmed(session, f"now{number}@example.org", ("article",))
        weekly = add_confirmed(session, "weekly@example.org", ("article", "video"))
        session.get_one(Subscriber, weekly).frequency = "weekly"
        session.commit()
    notice_id = _notice(app)
    page = client.get("/admin/notices").text
    row = re.search(r"(?s)<td class=\"forecast\">(.*?)</td>", page).group(1)
    assert "As published:" in row and "to 3 readers" in row
    assert "Weekly digest: Mon" in row and "to 1 readers" in row

    with app.extensions["mailer.sessionmaker"]() as session:
        automatic.pause(session, now=clock.now(), by="test")
        session.commit()
    assert "Held while automatic sending is paused." in client.get("/admin/notices").text
    assert notice_id == 1


def test_no_notice_ticked_means_no_recipient(app: Flask) -> None:
    client = signed_in(app)
    with app.extensions["mailer.sessionmaker"]() as session:
        add_confirmed(session, "ann@example.org")
        session.commit()
    page = client.get("/admin/campaigns/new").text
    assert re.search(r'id="audience-count" for="compose">0</output>', page)
    with app.extensions["mailer.sessionmaker"]() as session:
        assert session.scalars(select(Campaign)).all() == []
