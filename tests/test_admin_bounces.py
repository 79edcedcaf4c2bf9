"""The console's side of bounces: the ledger page, rates per campaign, the dashboard warning,
and erasure of the personal data the ledger holds."""

from __future__ import annotations

import json

from sqlalchemy import select

from mailer.models import BounceEvent
from tests.admin_helpers import signed_in
from tests.bounce_helpers import (
    arf,
    cli,
    drop,
    dsn,
    process_maildir,
    received,
    send_campaign,
)
from tests.helpers import add_confirmed
from tests.test_privacy import _every_value


def _bounced_campaign(app, session, inbox, maildir) -> int:
    """Ten readers; one hard bounce (10 %), one soft, one complaint (10 %)."""
    names = [f"reader{n}" for n in range(10)]
    for name in names:
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    campaign_id = send_campaign(app, session)
    hard, soft, angry = (received(inbox, f"reader{n}@example.org") for n in (0, 1, 2))
    drop(
        maildir,
        dsn(hard.mail_from, "reader0@example.org", original=hard.raw),
        dsn(soft.mail_from, "reader1@example.org", status="4.2.2", diagnostic="smtp; 452 full"),
        arf(angry.raw, to=angry.mail_from),
    )
    assert process_maildir(app, maildir) == {"hard_bounce": 1, "soft_bounce": 1, "complaint": 1}
    return campaign_id


def test_bounces_page_lists_each_event_and_shows_raw_reports_to_admins_only(
    campaign_app, session, inbox, maildir
):
    campaign_id = _bounced_campaign(campaign_app, session, inbox, maildir)
    admin = signed_in(campaign_app)
    page = admin.get("/admin/bounces").get_data(as_text=True)
    assert page.count('<tr class="bounce-') == 3
    assert "reader0@example.org" in page and "5.1.1" in page and "no such user" in page
    assert "reader1@example.org" in page and "4.2.2" in page
    assert "reader2@example.org" in page and "feedback abuse" in page
    assert f"/admin/campaigns/{campaign_id}" in page and "New this week" in page
    hard_only = admin.get("/admin/bounces?kind=hard").get_data(as_text=True)
    assert "reader0@example.org" in hard_only and "reader1@example.org" not in hard_only

    event = session.scalars(select(BounceEvent).where(BounceEvent.kind == "hard")).one()
    raw = admin.get(f"/admin/bounces/{event.id}")
    assert raw.status_code == 200
    assert "Undelivered Mail Returned to Sender" in raw.get_data(as_text=True)

    editor = signed_in(campaign_app, role="editor", email="ed@example.com")
    listing = editor.get("/admin/bounces").get_data(as_text=True)
    assert "reader0@example.org" in listing and "raw report" not in listing
    assert editor.get(f"/admin/bounces/{event.id}").status_code == 403


def test_campaign_report_gives_rates_and_the_dashboard_warns_past_the_limits(
    campaign_app, session, inbox, maildir
):
    admin = signed_in(campaign_app)
    assert "Deliverability warning" not in admin.get("/admin/").get_data(as_text=True)
    campaign_id = _bounced_campaign(campaign_app, session, inbox, maildir)

    report = admin.get(f"/admin/campaigns/{campaign_id}").get_data(as_text=True)
    assert "10.00 %" in report and "(1 of 10 delivered; keep under 2 %)" in report
    assert "1 marked as spam" in report
    assert "past what Gmail and Yahoo accept" in report
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert "Deliverability warning" in dashboard
    assert "10.0 % hard bounces" in dashboard and "10.00 % complaints" in dashboard


def test_erasing_a_subscriber_removes_their_bounce_reports(campaign_app, session, inbox, maildir):
    _bounced_campaign(campaign_app, session, inbox, maildir)
    exported = cli(campaign_app, "subscribers", "data", "reader0@example.org")
    assert [event["kind"] for event in json.loads(exported.output)["bounces_and_complaints"]] == [
        "hard"
    ]
    for name in ("reader0", "reader1", "reader2"):
        erased = cli(campaign_app, "subscribers", "erase", f"{name}@example.org", "--yes")
        assert erased.exit_code == 0, erased.output
    session.expire_all()
    everything = _every_value(session)
    assert "reader0@example.org" not in everything and "reader2@example.org" not in everything
    assert "no such user" not in everything  # the diagnostic quoted the address
    assert session.scalars(select(BounceEvent)).all() == []
