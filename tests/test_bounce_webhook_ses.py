"""Amazon SES bounce and complaint notifications through SNS.

The notifications follow "Amazon SNS notification examples for Amazon SES",
the envelope and its signature "Verifying the signatures of Amazon SNS
messages"; they are addressed to the readers of a real campaign and signed
with a key and certificate made for the test, which a local HTTP server
serves as SNS would. Every forged or replayed call answers 403 and leaves
every row as it was.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from mailer import clock, suppression
from mailer.models import BounceEvent
from tests.bounce_helpers import delivery_of, only_campaign, readers, rows, subscriber_of

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailer-bounces"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
POSTMARK_AUTH = "postmark:webhook-password-0123"


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
    ids = readers(app, session, inbox, "jane", "richard", "mary")
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

    campaign_id = only_campaign(session)
    jane = delivery_of(session, "jane@example.org", campaign_id)
    assert jane.status == "bounced" and "550 5.1.1" in jane.last_error
    assert suppression.reason_for(session, "jane@example.org") == "hard_bounce"
    assert suppression.reason_for(session, "richard@example.org") == "complaint"
    assert subscriber_of(session, "richard@example.org").status == "unsubscribed"
    assert suppression.reason_for(session, "mary@example.org") is None
    event = session.scalars(select(BounceEvent).where(BounceEvent.kind == "hard")).one()
    assert (event.source, event.status, event.campaign_id) == ("ses", "5.1.1", campaign_id)


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
    ids = readers(app, session, inbox, "jane")
    signer, stranger = Signer(amazon), Signer(amazon)
    bounce = _ses_bounce([{"emailAddress": "jane@example.org"}], ids["jane"])
    genuine = signer.notification(bounce)
    before = rows(session)
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
    assert rows(session) == before

    assert _post_sns(app, genuine).status_code == 200
    after = rows(session)
    replay = _post_sns(app, genuine)
    assert replay.status_code == 403 and "replay" in replay.get_json()["detail"]
    assert rows(session) == after
