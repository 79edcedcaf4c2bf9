"""The sending providers' webhooks: Amazon SES (through SNS), SendGrid, Mailgun, Postmark.

The payloads follow each provider's documentation (SES: "Amazon SNS
notification examples for Amazon SES"; SNS: "Verifying the signatures of
Amazon SNS messages"; SendGrid: "Event Webhook Reference" and its security
features; Mailgun: "Securing webhooks" and its event structure; Postmark:
"Bounce webhook" and "Spam complaint webhook"), addressed to the readers of a
real campaign and signed here with keys made for the test. SNS fetches its
signing certificate and subscription URL from a local HTTP server. Every
forged or replayed call answers 401 or 403 and leaves every row as it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from mailer import clock, suppression
from mailer.models import BounceEvent, Delivery, Subscriber, Suppression
from tests.bounce_helpers import delivery_of, received, send_campaign, subscriber_of
from tests.helpers import add_confirmed

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailer-bounces"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
POSTMARK_AUTH = "postmark:webhook-password-0123"


def _rows(session) -> list[tuple]:
    session.expire_all()
    return [
        *session.execute(select(Delivery.id, Delivery.status, Delivery.last_error)).all(),
        *session.execute(select(Subscriber.id, Subscriber.status, Subscriber.soft_bounces)).all(),
        *session.execute(select(Suppression.email, Suppression.reason)).all(),
        *session.execute(select(BounceEvent.id)).all(),
    ]


def _readers(app, session, inbox, *names: str) -> dict[str, str]:
    """A campaign to `names`@example.org; each reader's Message-ID, as the provider echoes it."""
    for name in names:
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    send_campaign(app, session)
    return {
        name: str(received(inbox, f"{name}@example.org").message["Message-ID"]) for name in names
    }


# ---------------------------------------------------------------- Amazon SES through SNS


class AmazonStandIn:
    """What SNS serves: signing certificates and subscription-confirmation URLs."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append(self.path)
                confirmed = b"<ConfirmSubscriptionResponse/>"
                body = stand_in.files.get(self.path.split("?")[0], confirmed)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def amazon():
    stand_in = AmazonStandIn()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


class Signer:
    """Signs SNS messages as Amazon does, with a key whose certificate the stand-in serves."""

    def __init__(self, amazon: AmazonStandIn) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
        amazon.files[path] = _certificate(self.key)
        self.cert_url = f"https://sns.us-east-1.amazonaws.com{path}"

    def sign(self, envelope: dict, *, key: rsa.RSAPrivateKey | None = None) -> dict:
        fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        if envelope["Type"] != "Notification":
            fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token"]
            fields += ["TopicArn", "Type"]
        text = "".join(f"{name}\n{envelope[name]}\n" for name in fields if name in envelope)
        signature = (key or self.key).sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        return {**envelope, "Signature": base64.b64encode(signature).decode()}

    def notification(self, message: dict, **overrides: str) -> dict:
        envelope = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Message": json.dumps(message),
            "Timestamp": clock.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "SignatureVersion": "2",
            "SigningCertURL": self.cert_url,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            **overrides,
        }
        return self.sign(envelope)


def _ses_bounce(recipients: list[dict], message_id: str, bounce_type: str = "Permanent") -> dict:
    """SES's "bounce notification with a DSN", for our mail."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "reportingMTA": "dns; email.example.com",
            "bouncedRecipients": recipients,
            "bounceSubType": "General",
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
            "remoteMtaIp": "127.0.2.0",
        },
        "mail": {
            "timestamp": "2016-01-27T14:59:38.237Z",
            "source": "notices@mailer.test",
            "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/mailer.test",
            "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "destination": [r["emailAddress"] for r in recipients],
            "headersTruncated": False,
            "headers": [{"name": "Message-ID", "value": message_id}],
            "commonHeaders": {"messageId": message_id, "subject": "New this week"},
        },
    }


def _ses_complaint(address: str) -> dict:
    """SES's "complaint notification without a feedback report": no headers, an address."""
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "0000013786031775-fea503bc-7497-49e1-881b-a0379bb037d3-000000",
        },
        "mail": {
            "timestamp": "2016-01-27T14:59:38.237Z",
            "messageId": "0000013786031775-163e3910-53eb-4c8e-a04a-f29debf88a84-000000",
            "source": "notices@mailer.test",
            "destination": [address],
        },
    }


def _post_sns(app, envelope: dict):
    # SNS posts its JSON as text/plain.
    return app.test_client().post(
        "/webhooks/ses", data=json.dumps(envelope), content_type="text/plain; charset=UTF-8"
    )


def test_ses_bounces_and_complaints_through_sns_are_applied(make_app, session, inbox, amazon):
    app = make_app(ses_topic_arns=TOPIC, sns_fetch_origin=amazon.origin, relay_hold=0.3)
    ids = _readers(app, session, inbox, "jane", "richard", "mary")
    signer = Signer(amazon)
    bounce = _ses_bounce(
        [
            {
                "emailAddress": "jane@example.org",
                "status": "5.1.1",
                "action": "failed",
                "diagnosticCode": "smtp; 550 5.1.1 <jane@example.org>... User",
            }
        ],
        ids["jane"],
    )
    response = _post_sns(app, signer.notification(bounce))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"applied": 1, "outcomes": {"hard_bounce": 1}}
    response = _post_sns(app, signer.notification(_ses_complaint("richard@example.org")))
    assert response.get_json() == {"applied": 1, "outcomes": {"complaint": 1}}

    jane = delivery_of(session, "jane@example.org", 1)
    assert jane.status == "bounced" and "550 5.1.1" in jane.last_error
    assert suppression.reason_for(session, "jane@example.org") == "hard_bounce"
    assert suppression.reason_for(session, "richard@example.org") == "complaint"
    assert subscriber_of(session, "richard@example.org").status == "unsubscribed"
    assert suppression.reason_for(session, "mary@example.org") is None
    event = session.scalars(select(BounceEvent).where(BounceEvent.kind == "hard")).one()
    assert (event.source, event.status, event.campaign_id) == ("ses", "5.1.1", 1)


def test_ses_subscription_confirmation_is_confirmed_by_fetching_its_url(make_app, session, amazon):
    app = make_app(ses_topic_arns=TOPIC, sns_fetch_origin=amazon.origin)
    signer = Signer(amazon)
    subscribe = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f"
    envelope = signer.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": "2336412f37",
            "TopicArn": TOPIC,
            "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
            "SubscribeURL": subscribe,
            "Timestamp": clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "SignatureVersion": "2",
            "SigningCertURL": signer.cert_url,
        }
    )
    response = _post_sns(app, envelope)
    assert response.status_code == 200 and response.get_json()["applied"] == 0
    assert "/?Action=ConfirmSubscription&Token=2336412f" in amazon.requests

    forged = {**envelope, "SubscribeURL": "https://attacker.example/?Action=ConfirmSubscription"}
    assert _post_sns(app, signer.sign(forged)).status_code == 403


def test_forged_or_replayed_sns_messages_change_nothing(make_app, session, inbox, amazon):
    app = make_app(ses_topic_arns=TOPIC, sns_fetch_origin=amazon.origin, relay_hold=0.3)
    ids = _readers(app, session, inbox, "jane")
    signer, stranger = Signer(amazon), Signer(amazon)
    bounce = _ses_bounce([{"emailAddress": "jane@example.org"}], ids["jane"])
    genuine = signer.notification(bounce)
    before = _rows(session)
    stale = (clock.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    forgeries = {
        "another key": signer.sign(genuine, key=stranger.key),
        "body changed": {**genuine, "Message": json.dumps(_ses_complaint("jane@example.org"))},
        "certificate elsewhere": signer.sign(
            {**genuine, "SigningCertURL": f"https://sns.attacker.example{signer.cert_url[35:]}"}
        ),
        "certificate over http": signer.sign(
            {**genuine, "SigningCertURL": signer.cert_url.replace("https", "http")}
        ),
        "lookalike host": signer.sign(
            {**genuine, "SigningCertURL": signer.cert_url.replace(".com/", ".com.evil.example/")}
        ),
        "another topic": signer.notification(
            bounce, TopicArn="arn:aws:sns:us-east-1:999999999999:theirs"
        ),
        "two days old": signer.notification(bounce, Timestamp=stale),
        "no signature": {k: v for k, v in genuine.items() if k != "Signature"},
    }
    for name, envelope in forgeries.items():
        response = _post_sns(app, envelope)
        assert response.status_code == 403, (name, response.get_data(as_text=True))
    assert _rows(session) == before

    assert _post_sns(app, genuine).status_code == 200
    after = _rows(session)
    replay = _post_sns(app, genuine)
    assert replay.status_code == 403 and "replay" in replay.get_json()["error"]
    assert _rows(session) == after


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
    ids = _readers(app, session, inbox, "ann", "bob", "cy")
    events = _sendgrid_events(ids)
    before = _rows(session)
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
    assert _rows(session) == before

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
    after = _rows(session)
    assert _post_sendgrid(app, key, events, stamp=now).status_code == 403  # the same call again
    assert _rows(session) == after


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
    ids = _readers(app, session, inbox, "alice", "bob", "carol")
    client = app.test_client()
    failed = _mailgun_failed("alice@example.org", ids["alice"])
    before = _rows(session)
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
    assert _rows(session) == before

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
    after = _rows(session)
    # The same token again, with another event under its signature, is a replay.
    replay = client.post("/webhooks/mailgun", json=tampered)
    assert replay.status_code == 403 and "replay" in replay.get_json()["error"]
    assert suppression.reason_for(session, "carol@example.org") is None
    assert _rows(session) == after


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
    ids = _readers(app, session, inbox, "john", "jane", "joe")
    client = app.test_client()
    bounce = _postmark_bounce("john@example.org", content=f"Message-ID: {ids['john']}\n")
    https = {"base_url": "https://mailer.test"}
    before = _rows(session)
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
    assert _rows(session) == before

    auth = _basic(POSTMARK_AUTH)
    response = client.post("/webhooks/postmark", json=bounce, headers=auth, **https)
    assert response.get_json() == {"applied": 1, "outcomes": {"hard_bounce": 1}}
    assert delivery_of(session, "john@example.org", 1).status == "bounced"  # by its Message-ID
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
