"""The sending providers' webhooks: SendGrid, Mailgun, Postmark (Amazon SES: its own file).

The payloads follow each provider's documentation (SendGrid: "Event Webhook
Reference" and its security features; Mailgun: "Securing webhooks" and its
event structure; Postmark: "Bounce webhook" and "Spam complaint webhook"),
addressed to the readers of a real campaign and signed here with keys made
for the test. Every forged or replayed call answers 401 or 403 and leaves
every row as it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailer import clock, suppression
from tests.bounce_helpers import delivery_of, only_campaign, readers, rows, subscriber_of

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailer-bounces"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
POSTMARK_AUTH = "postmark:webhook-password-0123"


# ---------------------------------------------------------------- SendGrid


def _sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, base64.b64encode(der).decode()


def _post_sendgrid(app, key, events: list, *, stamp: int | None = None, body: bytes | None = None):
    payload = json.dumps(events).encode()
    stamp = stamp if stamp is not None else int(clock.now().timestamp())
    signature = key.sign(str(stamp).encode() + payload, ec.ECDSA(hashes.SHA256()))
    return app.test_client().post(
        "/webhooks/sendgrid",
        data=payload if body is None else body,
        content_type="application/json",
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(stamp),
        },
    )


def _sendgrid_events(ids: dict[str, str]) -> list[dict]:
    """The Event Webhook Reference's examples: processed, deferred, bounce, spamreport."""
    common = {"timestamp": 1513299569, "category": "cat facts", "sg_message_id": "sg_message_id"}
    return [
        {**common, "email": "ann@example.org", "smtp-id": ids["ann"], "event": "processed"},
        {
            **common,
            "email": "bob@example.org",
            "smtp-id": ids["bob"],
            "event": "deferred",
            "response": "400 try again later",
            "attempt": "5",
        },
        {
            **common,
            "email": "ann@example.org",
            "smtp-id": ids["ann"],
            "event": "bounce",
            "reason": "500 unknown recipient",
            "status": "5.0.0",
            "type": "bounce",
            "bounce_classification": "Invalid Address",
        },
        {**common, "email": "cy@example.org", "smtp-id": ids["cy"], "event": "spamreport"},
    ]


def test_sendgrid_signed_events_are_applied_forged_and_replayed_ones_refused(
    make_app, session, inbox
):
    key, public = _sendgrid_keys()
    app = make_app(sendgrid_webhook_key=public, relay_hold=0.3, send_rate=0)
    ids = readers(app, session, inbox, "ann", "bob", "cy")
    events = _sendgrid_events(ids)
    before = rows(session)
    other, _ = _sendgrid_keys()
    now = int(clock.now().timestamp())
    refused = {
        "another key": _post_sendgrid(app, other, events),
        "body changed": _post_sendgrid(app, key, events, body=json.dumps(events[:1]).encode()),
        "an hour old": _post_sendgrid(app, key, events, stamp=now - 3600),
        "unsigned": app.test_client().post("/webhooks/sendgrid", json=events),
    }
    assert {name: r.status_code for name, r in refused.items()} == {
        "another key": 403,
        "body changed": 403,
        "an hour old": 403,
        "unsigned": 401,
    }
    assert rows(session) == before

    response = _post_sendgrid(app, key, events, stamp=now)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcomes"] == {
        "soft_bounce": 1,
        "hard_bounce": 1,
        "complaint": 1,
    }
    assert suppression.reason_for(session, "ann@example.org") == "hard_bounce"
    assert subscriber_of(session, "bob@example.org").soft_bounces == 1
    assert suppression.reason_for(session, "cy@example.org") == "complaint"
    after = rows(session)
    assert _post_sendgrid(app, key, events, stamp=now).status_code == 403  # the same call again
    assert rows(session) == after


# ---------------------------------------------------------------- Mailgun


def _mailgun(event: dict, *, key: str = MAILGUN_KEY, stamp: int | None = None, token=None) -> dict:
    stamp = stamp if stamp is not None else int(clock.now().timestamp())
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": str(stamp), "token": token, "signature": signature},
        "event-data": event,
    }


def _mailgun_failed(address: str, message_id: str, severity: str = "permanent") -> dict:
    """Mailgun's `failed` event as its webhook samples show it."""
    return {
        "event": "failed",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1521233195.375624,
        "severity": severity,
        "reason": "bounce",
        "recipient": address,
        "recipient-domain": "example.org",
        "log-level": "error",
        "message": {
            "headers": {
                "to": address,
                "message-id": message_id.strip("<>"),
                "from": "notices@mailer.test",
                "subject": "New this week",
            },
            "attachments": [],
            "size": 111,
        },
        "delivery-status": {
            "attempt-no": 1,
            "message": "550 5.1.1 The email account that you tried to reach does not exist.",
            "code": 550,
            "description": "",
            "session-seconds": 0.1,
        },
        "flags": {"is-routed": False, "is-authenticated": True},
    }


def test_mailgun_signed_events_are_applied_forged_stale_and_replayed_ones_refused(
    make_app, session, inbox
):
    app = make_app(mailgun_signing_key=MAILGUN_KEY, relay_hold=0.3, send_rate=0)
    ids = readers(app, session, inbox, "alice", "bob", "carol")
    client = app.test_client()
    failed = _mailgun_failed("alice@example.org", ids["alice"])
    before = rows(session)
    stale = int((clock.now() - timedelta(minutes=30)).timestamp())
    for name, body in {
        "another key": _mailgun(failed, key="key-not-the-signing-key-000"),
        "half an hour old": _mailgun(failed, stamp=stale),
        "no signature": {"event-data": failed},
    }.items():
        response = client.post("/webhooks/mailgun", json=body)
        assert response.status_code in (401, 403), name
    # The signature covers only timestamp and token: a changed event with a
    # fresh, unseen token still needs the key, which the attacker lacks.
    assert client.post("/webhooks/mailgun", json=_mailgun(failed, key="guess")).status_code == 403
    assert rows(session) == before

    genuine = _mailgun(failed)
    # Mailgun signs timestamp and token, not the event: a captured signature
    # on another event is refused because its token was used.
    tampered = {**genuine, "event-data": _mailgun_failed("carol@example.org", ids["carol"])}
    assert client.post("/webhooks/mailgun", json=genuine).get_json() == {
        "applied": 1,
        "outcomes": {"hard_bounce": 1},
    }
    complained = {
        "event": "complained",
        "recipient": "bob@example.org",
        "message": {"headers": {"message-id": ids["bob"].strip("<>")}},
    }
    response = client.post("/webhooks/mailgun", json=_mailgun(complained))
    assert response.get_json()["outcomes"] == {"complaint": 1}
    assert suppression.reason_for(session, "alice@example.org") == "hard_bounce"
    assert suppression.reason_for(session, "bob@example.org") == "complaint"
    after = rows(session)
    # The same token again, with another event under its signature, is a replay.
    replay = client.post("/webhooks/mailgun", json=tampered)
    assert replay.status_code == 403 and "replay" in replay.get_json()["detail"]
    assert suppression.reason_for(session, "carol@example.org") is None
    assert rows(session) == after


# ---------------------------------------------------------------- Postmark


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def _postmark_bounce(address: str, kind: str = "HardBounce", content: str = "") -> dict:
    """Postmark's bounce webhook example, for one of our readers."""
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "Name": "Hard bounce" if kind == "HardBounce" else "Soft bounce",
        "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"a_key": "a_value"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": address,
        "From": "notices@mailer.test",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": bool(content),
        "Inactive": True,
        "CanActivate": True,
        "Subject": "New this week",
        "Content": content,
    }


def test_postmark_needs_basic_auth_over_https(make_app, session, inbox):
    app = make_app(postmark_webhook_auth=POSTMARK_AUTH, relay_hold=0.3, send_rate=0)
    ids = readers(app, session, inbox, "john", "jane", "joe")
    client = app.test_client()
    bounce = _postmark_bounce("john@example.org", content=f"Message-ID: {ids['john']}\n")
    https = {"base_url": "https://mailer.test"}
    before = rows(session)
    refused = {
        "no auth": client.post("/webhooks/postmark", json=bounce, **https),
        "wrong password": client.post(
            "/webhooks/postmark", json=bounce, headers=_basic("postmark:guess"), **https
        ),
        "plain http": client.post("/webhooks/postmark", json=bounce, headers=_basic(POSTMARK_AUTH)),
    }
    assert {name: r.status_code for name, r in refused.items()} == {
        "no auth": 401,
        "wrong password": 401,
        "plain http": 403,
    }
    assert rows(session) == before

    auth = _basic(POSTMARK_AUTH)
    response = client.post("/webhooks/postmark", json=bounce, headers=auth, **https)
    assert response.get_json() == {"applied": 1, "outcomes": {"hard_bounce": 1}}
    john = delivery_of(session, "john@example.org", only_campaign(session))
    assert john.status == "bounced"  # found by its Message-ID
    soft = _postmark_bounce("jane@example.org", kind="SoftBounce")
    assert client.post("/webhooks/postmark", json=soft, headers=auth, **https).status_code == 200
    assert subscriber_of(session, "jane@example.org").soft_bounces == 1
    complaint = {
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Email": "joe@example.org",
    }
    response = client.post("/webhooks/postmark", json=complaint, headers=auth, **https)
    assert response.get_json()["outcomes"] == {"complaint": 1}
    assert suppression.reason_for(session, "joe@example.org") == "complaint"
    autoreply = {**_postmark_bounce("jane@example.org", kind="AutoResponder")}
    response = client.post("/webhooks/postmark", json=autoreply, headers=auth, **https)
    assert response.get_json() == {"applied": 0, "outcomes": {}}


@pytest.mark.parametrize("path", ["/webhooks/ses", "/webhooks/sendgrid", "/webhooks/mailgun"])
def test_provider_endpoints_do_not_exist_until_configured(app, path):
    response = app.test_client().post(path, json={})
    assert response.status_code == 404
    response = app.test_client().post(
        "/webhooks/postmark", json={}, base_url="https://mailer.test", headers=_basic(POSTMARK_AUTH)
    )
    assert response.status_code == 404
