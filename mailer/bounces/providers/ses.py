"""Amazon SES bounce and complaint notifications, delivered by Amazon SNS.

SNS signs each message with the key of a certificate it names
(SigningCertURL). The URL must be Amazon's own (https, sns.<region>.
amazonaws.com, a .pem path) or anyone could sign with a certificate of their
own; the message's topic must be one of MAILER_SES_TOPIC_ARNS. A
subscription confirmation is confirmed by fetching its SubscribeURL, held
to the same host pattern. Fetches go to MAILER_SNS_FETCH_ORIGIN when it is
set (tests point it at a local server), keeping the path.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.orm import Session

from mailer.bounces import standard
from mailer.bounces.events import provider_report
from mailer.bounces.providers import Refused, check_fresh, remember_once
from mailer.bounces.report import InvalidEvents, Report, Severity

AMAZON_HOST = re.compile(r"^sns\.[a-z0-9-]{1,30}\.amazonaws\.com(?:\.cn)?$")
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
SIGNED["UnsubscribeConfirmation"] = SIGNED["SubscriptionConfirmation"]
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
# SNS retries a failed delivery for up to an hour by default; a day covers any policy.
SNS_MAX_AGE = timedelta(days=1)
SEVERITY = {"Permanent": Severity.HARD, "Transient": Severity.SOFT, "Undetermined": Severity.SOFT}
FETCH_TIMEOUT = 10.0


def amazon_url(url: object, *, pem: bool = False) -> str:
    """`url` when it is one of Amazon SNS's own; Refused otherwise."""
    parts = urlsplit(str(url or ""))
    if (
        parts.scheme != "https"
        or not AMAZON_HOST.match(parts.hostname or "")
        or parts.username is not None
        or parts.port not in (None, 443)
        or (pem and not parts.path.endswith(".pem"))
    ):
        raise Refused(403, f"not an Amazon SNS URL: {str(url)[:200]!r}")
    return str(url)


def _fetch(url: str, origin: str) -> bytes:
    if origin:
        base = urlsplit(origin)
        parts = urlsplit(url)
        url = urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
    # The URL passed amazon_url (https, an SNS host of Amazon's) or was moved onto
    # MAILER_SNS_FETCH_ORIGIN, which the operator sets: no other scheme or host.
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as answer:  # noqa: S310
            return answer.read(64 * 1024)
    except (urllib.error.URLError, OSError) as error:
        raise Refused(403, f"cannot fetch {url}: {error}") from None


@lru_cache(maxsize=32)
def _certificate(url: str, origin: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_fetch(url, origin))
    except ValueError:
        raise Refused(403, "the signing certificate is no PEM certificate") from None


def _check_signature(envelope: dict[str, Any], origin: str, now: datetime) -> None:
    kind = envelope.get("Type")
    if kind not in SIGNED or str(envelope.get("SignatureVersion")) not in HASHES:
        raise Refused(403, "not a signed SNS message")
    lines = []
    for name in SIGNED[kind]:
        if name in envelope:
            lines += [name, str(envelope[name])]
    text = "\n".join(lines) + "\n"
    certificate = _certificate(amazon_url(envelope.get("SigningCertURL"), pem=True), origin)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Refused(403, "the signing certificate is not valid now")
    key = certificate.public_key()
    try:
        signature = base64.b64decode(str(envelope.get("Signature", "")), validate=True)
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature
        hasher = HASHES[str(envelope["SignatureVersion"])]()
        key.verify(signature, text.encode(), padding.PKCS1v15(), hasher)
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(403, "the SNS signature does not verify") from None


def verify(
    session: Session, body: bytes, *, topics: tuple[str, ...], origin: str, now: datetime
) -> dict[str, Any]:
    """The SNS message, signature, topic, age and uniqueness checked; Refused otherwise."""
    try:
        envelope = json.loads(body)
    except ValueError:
        raise InvalidEvents("the body must be an SNS message (JSON)") from None
    if not isinstance(envelope, dict):
        raise InvalidEvents("the body must be an SNS message (JSON object)")
    if envelope.get("TopicArn") not in topics:
        raise Refused(403, "a topic not in MAILER_SES_TOPIC_ARNS")
    _check_signature(envelope, origin, now)
    try:
        sent = datetime.fromisoformat(str(envelope.get("Timestamp")).replace("Z", "+00:00"))
    except ValueError:
        raise Refused(403, "no Timestamp") from None
    check_fresh(sent.astimezone(UTC), now, SNS_MAX_AGE)
    remember_once(session, "sns", str(envelope.get("MessageId")), now=now)
    return envelope


def confirm_subscription(envelope: dict[str, Any], *, origin: str) -> None:
    """Tell SNS we want the topic's messages: fetch the SubscribeURL it sent."""
    _fetch(amazon_url(envelope.get("SubscribeURL")), origin)


def reports(envelope: dict[str, Any]) -> list[Report]:
    """The bounces and complaints in an SES notification; none for other kinds."""
    try:
        notification = json.loads(str(envelope.get("Message", "")))
    except ValueError:
        raise InvalidEvents("the SNS Message is not an SES notification (JSON)") from None
    if not isinstance(notification, dict):
        raise InvalidEvents("the SNS Message is not an SES notification")
    kind = notification.get("notificationType") or notification.get("eventType")
    ids = _message_ids(notification.get("mail") or {})
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        severity = SEVERITY.get(str(bounce.get("bounceType")), Severity.SOFT)
        return [
            provider_report(
                "ses",
                email=standard.address(recipient.get("emailAddress")),
                severity=severity,
                message_ids=ids,
                status=str(recipient.get("status", "")),
                diagnostic=str(recipient.get("diagnosticCode", "")).split(";", 1)[-1],
                raw=notification,
            )
            for recipient in _recipients(bounce, "bouncedRecipients")
        ]
    if kind == "Complaint":
        complaint = notification.get("complaint") or {}
        if complaint.get("complaintFeedbackType") == "not-spam":
            return []
        return [
            provider_report(
                "ses",
                email=standard.address(recipient.get("emailAddress")),
                severity=None,
                message_ids=ids,
                diagnostic=f"feedback {complaint.get('complaintFeedbackType') or 'abuse'}",
                raw=notification,
            )
            for recipient in _recipients(complaint, "complainedRecipients")
        ]
    return []  # Delivery, Send, Open ...: nothing to act on


def _message_ids(mail: dict[str, Any]) -> list[str]:
    """Our Message-ID, when SES was set to include the original headers."""
    ids = [str((mail.get("commonHeaders") or {}).get("messageId", ""))]
    ids += [
        str(header.get("value", ""))
        for header in mail.get("headers") or ()
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id"
    ]
    return [value for value in ids if value]


def _recipients(section: dict[str, Any], key: str) -> list[dict[str, Any]]:
    found = section.get(key)
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise InvalidEvents(f"{key} must be a list of objects")
    return found
