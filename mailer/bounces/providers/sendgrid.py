"""SendGrid's Event Webhook, signed (ECDSA P-256 over the timestamp and the body).

The signature and timestamp come in the X-Twilio-Email-Event-Webhook-*
headers; the key is the verification key SendGrid shows once signing is on
(MAILER_SENDGRID_WEBHOOK_KEY). `bounce` events are permanent (hard) unless
SendGrid calls them `blocked` (a refusal of the message, not the address:
soft), `deferred` is a retry in progress (soft, once per mail), `spamreport`
a complaint. `smtp-id` is the Message-ID we gave the mail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from mailer.bounces import standard
from mailer.bounces.events import MAX_EVENTS, provider_report
from mailer.bounces.providers import Refused, check_fresh, remember_once
from mailer.bounces.report import InvalidEvents, Report, Severity

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or PEM; ValueError if neither."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("must be SendGrid's verification key (base64 or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("must be an elliptic-curve public key")
    return key


def verify(
    session: Session, body: bytes, headers: Mapping[str, str], *, key: str, now: datetime
) -> list[Any]:
    """The events, once signature, age and uniqueness are checked; Refused otherwise."""
    stamp, signature = headers.get(TIMESTAMP, ""), headers.get(SIGNATURE, "")
    if not stamp or not signature:
        raise Refused(401, f"{SIGNATURE} and {TIMESTAMP} are required")
    try:
        public_key(key).verify(
            base64.b64decode(signature, validate=True),
            stamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
        moment = datetime.fromtimestamp(int(stamp), UTC)
    except (InvalidSignature, binascii.Error, ValueError, OverflowError):
        raise Refused(403, "the SendGrid signature does not verify") from None
    check_fresh(moment, now)
    # What was signed identifies the call: an ECDSA signature can be re-made
    # (or bent into another valid one) for the same timestamp and body.
    remember_once(session, "sendgrid", stamp + hashlib.sha256(body).hexdigest(), now=now)
    try:
        events = json.loads(body)
    except ValueError:
        raise InvalidEvents("the body must be a JSON list of events") from None
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise InvalidEvents(f"the body must be a JSON list of at most {MAX_EVENTS} events")
    return events


def reports(events: list[Any]) -> list[Report]:
    """The bounces, deferrals and spam reports among the events; others are not ours to act on."""
    found = []
    for number, event in enumerate(events):
        if not isinstance(event, dict):
            raise InvalidEvents(f"event {number} must be an object")
        kind = event.get("event")
        if kind == "bounce":
            severity: Severity | None = (
                Severity.SOFT if event.get("type") == "blocked" else Severity.HARD
            )
            diagnostic = str(event.get("reason", ""))
        elif kind == "deferred":
            severity, diagnostic = Severity.SOFT, str(event.get("response", ""))
        elif kind == "spamreport":
            severity, diagnostic = None, "feedback abuse"
        else:
            continue
        email = standard.address(event.get("email"))
        if not email:
            raise InvalidEvents(f"event {number} has no email address")
        found.append(
            provider_report(
                "sendgrid",
                email=email,
                severity=severity,
                message_ids=[str(event.get("smtp-id", ""))],
                status=str(event.get("status", "")) if kind == "bounce" else "",
                diagnostic=diagnostic,
                raw=event,
            )
        )
    return found
