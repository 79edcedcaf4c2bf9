"""The console's Integrations page: API tokens and webhook endpoints, for admins only."""

from __future__ import annotations

import re

from sqlalchemy import select

from mailer import api_tokens, clock
from mailer.models import ApiToken, AuditEntry
from mailer.outbound_webhooks import sealing
from mailer.outbound_webhooks.models import WebhookEndpoint
from tests.admin_helpers import post, signed_in


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(app, session):
    client = signed_in(app)
    page = client.get("/admin/integrations").get_data(as_text=True)
    assert "/api/openapi.json" in page and "No endpoints yet" in page

    answer = post(
        client,
        "/admin/webhooks/new",
        {
            "url": "https://crm.example/hooks",
            "description": "CRM",
            "events": ["subscriber.confirmed", "subscriber.unsubscribed"],
        },
    )
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    secret = re.search(r'id="webhook-secret">(whsec_[^<]+)<', text).group(1)
    endpoint = session.scalars(select(WebhookEndpoint)).one()
    keys = app.extensions["mailer.settings"].secret_keys
    assert secret not in endpoint.secret  # sealed at rest
    assert sealing.unseal(keys, endpoint.secret) == secret
    assert endpoint.event_list == ["subscriber.confirmed", "subscriber.unsubscribed"]
    assert secret not in client.get(f"/admin/webhooks/{endpoint.id}").get_data(as_text=True)
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.create")).one()
    assert secret not in f"{entry.target} {entry.detail}"

    off = post(client, f"/admin/webhooks/{endpoint.id}/disable")
    assert off.status_code == 303
    session.expire_all()
    assert not session.get(WebhookEndpoint, endpoint.id).enabled


def test_bad_endpoints_are_refused_with_the_reason(app, session):
    client = signed_in(app)
    for url, events, words in [
        ("ftp://crm.example/x", ["subscriber.confirmed"], "http(s) URL"),
        ("https://user:pw@crm.example/x", ["subscriber.confirmed"], "no user or password"),
        ("https://crm.example/x", [], "at least one event"),
        ("https://crm.example/x", ["subscriber.hacked"], "Unknown event"),
    ]:
        answer = post(client, "/admin/webhooks/new", {"url": url, "events": events})
        assert answer.status_code == 400 and words in answer.get_data(as_text=True)
    assert session.scalars(select(WebhookEndpoint)).all() == []


def test_api_tokens_are_made_shown_once_and_revoked(app, session):
    client = signed_in(app)
    made = post(client, "/admin/integrations/tokens", {"name": "cms"})
    token = re.search(r'id="new-token">([^<]+)<', made.get_data(as_text=True)).group(1)
    assert api_tokens.authenticate(session, token, now=clock.now()) is not None
    session.commit()  # authenticate notes the use: let go of the row
    row = session.scalars(select(ApiToken)).one()
    assert post(client, f"/admin/integrations/tokens/{row.id}/revoke").status_code == 303
    session.expire_all()
    assert api_tokens.authenticate(session, token, now=clock.now()) is None


def test_editors_cannot_reach_integrations(app, session):
    client = signed_in(app, "editor", "ed@example.com")
    assert client.get("/admin/integrations").status_code == 403
    answer = post(
        client,
        "/admin/webhooks/new",
        {"url": "https://x.example", "events": ["subscriber.confirmed"]},
    )
    assert answer.status_code == 403
    assert post(client, "/admin/integrations/tokens", {"name": "mine"}).status_code == 403
    assert session.scalars(select(WebhookEndpoint)).all() == []
    assert session.scalars(select(ApiToken)).all() == []
