"""One set of campaign actions and one test-mail path for the console, the API and the CLI."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer import api_tokens, campaigns, clock, notices
from mailer.cli import main
from mailer.models import AuditEntry, Campaign, Delivery
from tests.admin_helpers import post, signed_in
from tests.conftest import running_worker
from tests.helpers import add_confirmed, wait_until
from tests.smtp_sink import Inbox


def _campaign(session: Session) -> int:
    add_confirmed(session, "reader@example.org", ("article",))
    notice_id = notices.create_notice(
        session,
        notices.NoticeDraft(kind="article", title="Sleep", url="https://site.example/s"),
        source="cli",
        now=clock.now(),
    )
    campaign_id = campaigns.create_campaign(
        session, subject="This week", notice_ids=[notice_id], now=clock.now()
    )
    session.commit()
    return campaign_id


def _console(app: Flask, campaign_id: int, action: str) -> None:
    if "test-console" not in app.extensions:
        app.extensions["test-console"] = signed_in(app)
    client = app.extensions["test-console"]
    page = post(client, f"/admin/campaigns/{campaign_id}/{action}", {}, follow_redirects=True)
    assert page.status_code == 200 and "Not done" not in page.get_data(as_text=True)


def _api(app: Flask, campaign_id: int, action: str) -> None:
    with app.extensions["mailer.sessionmaker"]() as session:
        token = api_tokens.create_token(session, name="cms", now=clock.now())
        session.commit()
    response = app.test_client().post(
        f"/api/v1/campaigns/{campaign_id}/{action}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.get_json()


def _cli(app: Flask, campaign_id: int, action: str) -> None:
    result = CliRunner().invoke(
        main, ["campaign", action, str(campaign_id)], obj=ScriptInfo(create_app=lambda: app)
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("entry", [_console, _api, _cli], ids=["console", "api", "cli"])
def test_every_entry_point_moves_the_campaign_the_same_way(
    app: Flask, session: Session, inbox: Inbox, entry: Callable[[Flask, int, str], None]
) -> None:
    """start, pause, resume, cancel: the same states, and sending goes on where it should."""
    campaign_id = _campaign(session)

    def status() -> str:
        session.expire_all()
        return session.get_one(Campaign, campaign_id).status

    entry(app, campaign_id, "start")
    entry(app, campaign_id, "pause")
    assert status() == "paused"
    with running_worker(app):  # a paused campaign sends nothing; resume queues its chains
        assert inbox.messages == []
        entry(app, campaign_id, "resume")
        wait_until(lambda: status() == "finished")
    assert [mail.rcpt_tos for mail in inbox.messages] == [["reader@example.org"]]
    # A failed delivery queued again is sent by the chains resend-failed queues.
    session.execute(update(Delivery).values(status="failed"))
    session.commit()
    with running_worker(app):
        entry(app, campaign_id, "resend-failed")
        wait_until(lambda: status() == "finished" and len(inbox.messages) == 2)
    with pytest.raises(AssertionError):  # a finished campaign cannot be paused, anywhere
        entry(app, campaign_id, "pause")
    assert status() == "finished"


def test_the_api_queues_a_test_mail_for_the_worker(
    app: Flask, client: FlaskClient, session: Session, inbox: Inbox
) -> None:
    campaign_id = _campaign(session)
    token = api_tokens.create_token(session, name="cms", now=clock.now())
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/campaigns/{campaign_id}/test"

    assert (
        client.post(url, json={"to": "nobody"}, headers=headers).status_code == 422
    )  # the right shape, no address
    assert client.post(url, json={"to": "a@b.org", "x": 1}, headers=headers).status_code == 400
    missing = client.post("/api/v1/campaigns/99/test", json={"to": "a@b.org"}, headers=headers)
    assert missing.status_code == 404
    with running_worker(app):
        queued = client.post(url, json={"to": "Editor@Example.org"}, headers=headers)
        assert queued.status_code == 202
        assert queued.get_json() == {
            "id": campaign_id,
            "test_to": "editor@example.org",
            "status": "queued",
        }
        [mail] = inbox.wait_for("editor@example.org")

        def audited() -> list[AuditEntry]:
            session.expire_all()
            return list(session.scalars(select(AuditEntry)))

        [entry] = wait_until(audited)
    assert mail.message["Subject"] == "[Test] This week"
    assert (entry.action, entry.detail) == ("campaign.test", "to …@example.org: sent")
    assert len(inbox.messages) == 1  # the bad requests sent nothing
    assert session.get_one(Campaign, campaign_id).status == "draft"
