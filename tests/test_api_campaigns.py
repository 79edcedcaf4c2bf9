"""Campaigns through the JSON API: create, start against a real worker, progress, refusals."""

from __future__ import annotations

from sqlalchemy import func, select

from mailer import api_tokens, clock
from mailer.models import Campaign
from tests.conftest import running_worker
from tests.helpers import add_confirmed, wait_until


def _token(session) -> dict[str, str]:
    token = api_tokens.create_token(session, name="cms", now=clock.now())
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_create_start_and_watch_a_campaign(app, client, session, inbox):
    auth = _token(session)
    for number in range(12):
        add_confirmed(session, f"r{number}@example.org", ("video",))
    session.commit()
    notice = client.post(
        "/api/v1/notices",
        headers=auth,
        json={"kind": "video", "title": "Gentle stretches", "url": "https://site.example/v"},
    )
    created = client.post(
        "/api/v1/campaigns",
        headers=auth,
        json={"subject": "New video", "notice_ids": [notice.get_json()["id"]], "topics": ["video"]},
    )
    assert created.status_code == 201
    campaign_id = created.get_json()["id"]
    assert created.get_json()["status"] == "draft"
    assert created.headers["Location"] == f"/api/v1/campaigns/{campaign_id}"

    with running_worker(app):
        started = client.post(f"/api/v1/campaigns/{campaign_id}/start", headers=auth)
        assert started.status_code == 200 and started.get_json()["total"] == 12
        wait_until(
            lambda: (
                client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).get_json()["status"]
                == "finished"
            )
        )
    progress = client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).get_json()
    assert (progress["sent"], progress["failed"], progress["pending"]) == (12, 0, 0)
    assert len(inbox.messages) == 12


def test_campaign_api_refusals(app, client, session):
    auth = _token(session)
    assert client.post("/api/v1/campaigns", json={"subject": "x"}).status_code == 401
    bad = client.post("/api/v1/campaigns", headers=auth, json={"subject": "x", "notice_ids": [5]})
    assert bad.status_code == 422 and "no notice with id 5" in bad.get_json()["detail"]
    assert (
        client.post(
            "/api/v1/campaigns", headers=auth, json={"subject": "x", "notice_ids": "1"}
        ).status_code
        == 400
    )
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0
    missing = client.post("/api/v1/campaigns/42/pause", headers=auth)
    assert missing.status_code == 404 and "no campaign with id 42" in missing.get_json()["detail"]

    notice = client.post(
        "/api/v1/notices",
        headers=auth,
        json={"kind": "article", "title": "A", "url": "https://site.example/a"},
    ).get_json()["id"]
    campaign_id = client.post(
        "/api/v1/campaigns", headers=auth, json={"subject": "x", "notice_ids": [notice]}
    ).get_json()["id"]
    conflict = client.post(f"/api/v1/campaigns/{campaign_id}/resume", headers=auth)
    assert conflict.status_code == 409
    assert "cannot resume a campaign that is draft" in conflict.get_json()["detail"]
