"""Subscribers through the JSON API: add (consent proof or double opt-in), read, change,
unsubscribe, erase, list with filters and cursor paging; hostile calls change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer import api_tokens, clock, suppression
from mailer.models import AuditEntry, Consent, Subscriber, TransactionalMail
from tests.helpers import CONFIRM_LINK, add_confirmed, link, path_of

PROOF = "Ticked 'newsletter' on the checkout form, order 4711"


@pytest.fixture
def auth(session) -> dict[str, str]:
    token = api_tokens.create_token(session, name="cms", now=clock.now())
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_with_a_consent_proof_the_subscriber_is_confirmed_at_once(client, session, auth, inbox):
    new = {"email": "Ann@Example.org", "name": "Ann", "topics": ["video"], "frequency": "weekly"}
    response = client.post(
        "/api/v1/subscribers", json={**new, "consent_proof": PROOF}, headers=auth
    )

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["confirmation_mail"] == "none"
    subscriber = body["subscriber"]
    assert (subscriber["email"], subscriber["state"], subscriber["topics"]) == (
        "ann@example.org",
        "confirmed",
        ["video"],
    )
    assert subscriber["frequency"] == "weekly"
    assert response.headers["Location"] == f"/api/v1/subscribers/{subscriber['id']}"
    consent = session.scalars(select(Consent)).one()
    assert PROOF in consent.wording and "api-token:" in consent.wording
    assert consent.confirmed_at is not None
    assert _count(session, TransactionalMail) == 0  # no mail: they agreed elsewhere
    again = client.get(response.headers["Location"], headers=auth)
    assert again.status_code == 200 and again.get_json() == subscriber


def test_without_a_proof_it_is_a_signup_with_a_confirmation_mail(
    app, client, session, auth, inbox, worker
):
    response = client.post(
        "/api/v1/subscribers",
        json={"email": "bob@example.org", "topics": ["article"]},
        headers=auth,
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )

    assert response.status_code == 202, response.get_json()
    assert response.get_json()["subscriber"]["state"] == "pending"
    assert response.get_json()["confirmation_mail"] == "queued"
    mail = inbox.wait_for("bob@example.org")[0].message
    consent = session.scalars(select(Consent)).one()
    assert (consent.form, consent.ip, consent.confirmed_at) == ("api", "203.0.113.9", None)

    page = client.get(path_of(link(CONFIRM_LINK, mail)))
    csrf = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
    client.post(path_of(link(CONFIRM_LINK, mail)), data={"csrf_token": csrf.split('"')[0]})
    subscriber_id = response.get_json()["subscriber"]["id"]
    confirmed = client.get(f"/api/v1/subscribers/{subscriber_id}", headers=auth).get_json()
    assert (confirmed["state"], confirmed["topics"]) == ("confirmed", ["article"])

    # The same limits per address as the site's form: no second mail within the hour.
    repeat = client.post("/api/v1/subscribers", json={"email": "bob@example.org"}, headers=auth)
    assert repeat.status_code == 409  # confirmed now: nothing to sign up for
    other = client.post("/api/v1/subscribers", json={"email": "cy@example.org"}, headers=auth)
    assert other.status_code == 202
    limited = client.post("/api/v1/subscribers", json={"email": "cy@example.org"}, headers=auth)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3600"
    assert limited.mimetype == "application/problem+json"
    assert (
        len(
            session.scalars(
                select(TransactionalMail).where(TransactionalMail.email == "cy@example.org")
            ).all()
        )
        == 1
    )


def test_existing_and_suppressed_addresses_are_conflicts(client, session, auth):
    add_confirmed(session, "ann@example.org")
    gone = add_confirmed(session, "gone@example.org")
    session.commit()
    assert client.post(f"/api/v1/subscribers/{gone}/unsubscribe", headers=auth).status_code == 200

    for email in ("ann@example.org", "gone@example.org"):
        response = client.post(
            "/api/v1/subscribers", json={"email": email, "consent_proof": PROOF}, headers=auth
        )
        assert response.status_code == 409, response.get_json()
    gone_row = session.get(Subscriber, gone)
    assert gone_row.status == "unsubscribed"  # a proof cannot undo an unsubscribe
    bad = client.post(
        "/api/v1/subscribers",
        json={"email": "not an address", "consent_proof": PROOF},
        headers=auth,
    )
    assert bad.status_code == 422 and bad.get_json()["detail"].startswith("email:")


def test_change_unsubscribe_and_erase(client, session, auth):
    subscriber_id = add_confirmed(session, "dee@example.org", name="Dee")
    session.commit()
    url = f"/api/v1/subscribers/{subscriber_id}"

    changed = client.patch(url, json={"topics": ["webinar"], "frequency": "weekly"}, headers=auth)
    assert changed.status_code == 200
    assert (changed.get_json()["topics"], changed.get_json()["name"]) == (["webinar"], "Dee")
    assert client.patch(url, json={"time_zone": "Mars/Olympus"}, headers=auth).status_code == 422
    assert client.patch(url, json={"name": "Dee\r\nBcc: x@y"}, headers=auth).status_code == 400
    session.expire_all()
    row = session.get(Subscriber, subscriber_id)
    assert (row.frequency, row.name, row.topic_names) == ("weekly", "Dee", ["webinar"])

    left = client.post(f"{url}/unsubscribe", headers=auth)
    assert left.status_code == 200
    assert (left.get_json()["state"], left.get_json()["unsubscribe_channel"]) == (
        "unsubscribed",
        "api",
    )
    assert client.patch(url, json={"topics": ["video"]}, headers=auth).status_code == 409

    assert client.delete(url, headers=auth).status_code == 204
    assert client.get(url, headers=auth).status_code == 404
    assert client.delete(url, headers=auth).status_code == 404
    assert _count(session, Subscriber) == 0
    assert suppression.reason_for(session, "dee@example.org") == "erased"
    entry = session.scalars(select(AuditEntry)).one()
    assert (entry.action, entry.target) == ("subscriber.erase", f"subscriber {subscriber_id}")
    assert "dee@" not in f"{entry.actor} {entry.target} {entry.detail}"


def test_list_filters_and_pages_by_cursor(client, session, auth):
    ids = [
        add_confirmed(session, f"reader{n}@example.org", ("video",) if n % 2 else ("article",))
        for n in range(5)
    ]
    session.commit()

    seen, cursor = [], ""
    while True:
        page = client.get(f"/api/v1/subscribers?limit=2&cursor={cursor}", headers=auth).get_json()
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == ids[::-1]  # newest first, each once
    videos = client.get("/api/v1/subscribers?topic=video", headers=auth).get_json()["items"]
    assert [item["email"] for item in videos] == ["reader3@example.org", "reader1@example.org"]
    found = client.get("/api/v1/subscribers?search=reader4", headers=auth).get_json()["items"]
    assert [item["id"] for item in found] == [ids[4]]
    pending = client.get("/api/v1/subscribers?state=pending", headers=auth).get_json()
    assert pending == {"items": [], "next_cursor": None}
    short = client.get("/api/v1/subscribers?search=re", headers=auth)
    assert short.status_code == 422 and "3 characters" in short.get_json()["detail"]
    assert client.get("/api/v1/subscribers?state=gone", headers=auth).status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/subscribers", {"email": "evil@example.org", "consent_proof": "trust me"}),
        ("patch", "/api/v1/subscribers/{id}", {"topics": ["video"]}),
        ("post", "/api/v1/subscribers/{id}/unsubscribe", None),
        ("delete", "/api/v1/subscribers/{id}", None),
        ("get", "/api/v1/subscribers?search=example", None),
    ],
)
def test_without_a_token_nothing_is_read_or_changed(client, session, method, path, body):
    subscriber_id = add_confirmed(session, "victim@example.org", ("article",))
    session.commit()
    response = getattr(client, method)(
        path.format(id=subscriber_id), json=body, headers={"Authorization": "Bearer forged"}
    )

    assert response.status_code == 401
    assert "victim" not in response.get_data(as_text=True)
    session.expire_all()
    assert [
        (row.email, row.status, row.topic_names) for row in session.scalars(select(Subscriber))
    ] == [("victim@example.org", "confirmed", ["article"])]
    assert _count(session, AuditEntry) == 0
