"""The generic bounce webhook, `POST /webhooks/bounce`, behind a bearer secret."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer import suppression
from mailer.models import Suppression
from tests.bounce_helpers import delivery_of, received, send_campaign, subscriber_of
from tests.helpers import add_confirmed

WEBHOOK_SECRET = "webhook-secret-0123456789"


# ---------------------------------------------------------------- webhook


def test_webhook_applies_bounces_and_complaints(make_app, session, inbox):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET, relay_hold=0.3, send_rate=0)
    for name in ("hard", "soft", "spam", "stranger-neighbour"):
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    campaign_id = send_campaign(app, session)
    message_id = str(received(inbox, "hard@example.org").message["Message-ID"])
    events = [
        {
            "type": "bounce",
            "bounce_type": "hard",
            "message_id": message_id.strip("<>"),
            "diagnostic": "550 5.1.1 user unknown",
        },
        {"type": "bounce", "bounce_type": "soft", "email": "Soft@example.org"},
        {"type": "complaint", "email": "spam@example.org"},
        {"type": "bounce", "bounce_type": "hard", "email": "nobody@example.org"},
    ]
    response = app.test_client().post(
        "/webhooks/bounce",
        json={"events": events},
        headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "applied": 4,
        "outcomes": {"hard_bounce": 1, "soft_bounce": 1, "complaint": 1, "unmatched": 1},
    }
    delivery = delivery_of(session, "hard@example.org", campaign_id)
    assert delivery.status == "bounced" and "user unknown" in delivery.last_error
    assert suppression.reason_for(session, "hard@example.org") == "hard_bounce"
    assert subscriber_of(session, "soft@example.org").soft_bounces == 1
    assert suppression.reason_for(session, "spam@example.org") == "complaint"
    assert subscriber_of(session, "spam@example.org").unsubscribe_channel == "complaint"
    assert subscriber_of(session, "stranger-neighbour@example.org").status == "confirmed"


def test_webhook_soft_bounces_by_address_count_to_suppression(make_app, session):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET)
    add_confirmed(session, "full@example.org")
    session.commit()
    event = {"type": "bounce", "bounce_type": "soft", "email": "full@example.org"}
    for count in (1, 2, 3):
        response = app.test_client().post(
            "/webhooks/bounce",
            json={"events": [event]},
            headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
        )
        assert response.get_json() == {"applied": 1, "outcomes": {"soft_bounce": 1}}
        assert subscriber_of(session, "full@example.org").soft_bounces == count
        expected = "soft_bounces" if count == 3 else None
        assert suppression.reason_for(session, "full@example.org") == expected


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        (
            {"events": [{"type": "bounce", "bounce_type": "hard", "email": "a@b.c", "colour": 1}]},
            400,
            "events[0].colour: is not a known field",
        ),
        (
            {"events": [{"type": "delivered", "email": "a@example.org"}]},
            400,
            "does not match any of the expected tags: 'bounce', 'complaint'",
        ),
        (
            {"events": [{"type": "bounce", "email": "a@example.org"}]},
            400,
            "events[0].bounce_type: is required",
        ),
        (
            {"events": [{"type": "bounce", "bounce_type": "hard"}]},
            400,
            "needs an email or a message_id",
        ),
        (
            {"events": [{"type": "complaint", "email": "not an address"}]},
            422,
            "email is not an address",
        ),
        (
            {"events": [{"type": "complaint", "email": 7}]},
            400,
            "events[0].email: Input should be a valid string",
        ),
        ({"events": []}, 400, "events: List should have at least 1 item"),
        ({"event": []}, 400, "events: is required"),
        ([1, 2], 400, "the body: Input should be a valid dictionary"),
        # A good event before a bad one: all or nothing.
        (
            {"events": [{"type": "complaint", "email": "victim@example.org"}, "x"]},
            400,
            "events[1]: Input should be a valid dictionary",
        ),
    ],
)
def test_webhook_refuses_a_bad_body_and_applies_nothing(make_app, session, body, status, problem):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET)
    add_confirmed(session, "victim@example.org")
    session.commit()
    response = app.test_client().post(
        "/webhooks/bounce", json=body, headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"}
    )
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert problem in response.get_json()["detail"]
    assert subscriber_of(session, "victim@example.org").status == "confirmed"
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_webhook_needs_the_secret_and_json(make_app, session):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET)
    add_confirmed(session, "victim@example.org")
    session.commit()
    client = app.test_client()
    complaint = {"events": [{"type": "complaint", "email": "victim@example.org"}]}
    for headers in (
        {},
        {"Authorization": "Bearer webhook-secret-012345678"},  # one character short
        {"Authorization": f"Basic {WEBHOOK_SECRET}"},
    ):
        response = client.post("/webhooks/bounce", json=complaint, headers=headers)
        assert response.status_code == 401 and "Bearer" in response.get_json()["detail"]
    auth = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}
    response = client.post("/webhooks/bounce", data="events=1", headers=auth)
    assert response.status_code == 400 and "must be JSON" in response.get_json()["detail"]
    response = client.post(
        "/webhooks/bounce", data=b"{" * 70_000, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert subscriber_of(session, "victim@example.org").status == "confirmed"

    off = make_app()  # no secret: the endpoint does not exist
    response = off.test_client().post("/webhooks/bounce", json=complaint, headers=auth)
    assert response.status_code == 404
    assert suppression.reason_for(session, "victim@example.org") is None
