"""Mailgun's webhooks: `failed` (permanent or temporary) and `complained` events.

Each call carries `signature: {timestamp, token, signature}`, the signature
being HMAC-SHA256 of timestamp + token with the webhook signing key
(MAILER_MAILGUN_SIGNING_KEY). The timestamp must be recent and the token new.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from mailer.bounces import standard
from mailer.bounces.events import provider_report
from mailer.bounces.providers import Refused, check_fresh, remember_once
from mailer.bounces.report import InvalidEvents, Report, Severity


def verify(session: Session, body: bytes, *, key: str, now: datetime) -> dict[str, Any]:
    """The event data, once signature, age and token are checked; Refused otherwise."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidEvents("the body must be Mailgun's JSON webhook payload") from None
    signed = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signed, dict) or not all(
        isinstance(signed.get(name), str) for name in ("timestamp", "token", "signature")
    ):
        raise Refused(401, "a signature with timestamp, token and signature is required")
    expected = hmac.new(
        key.encode(), (signed["timestamp"] + signed["token"]).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signed["signature"].lower()):
        raise Refused(403, "the Mailgun signature does not verify")
    try:
        moment = datetime.fromtimestamp(int(signed["timestamp"]), UTC)
    except (ValueError, OverflowError):
        raise Refused(403, "the signed timestamp is no time") from None
    check_fresh(moment, now)
    remember_once(session, "mailgun", signed["token"], now=now)
    event = payload.get("event-data")
    if not isinstance(event, dict):
        raise InvalidEvents("event-data must be an object")
    return event


def reports(event: dict[str, Any]) -> list[Report]:
    """A `failed` or `complained` event as a report; other events are not ours to act on."""
    kind = event.get("event")
    if kind not in ("failed", "complained"):
        return []
    email = standard.address(event.get("recipient"))
    if not email:
        raise InvalidEvents("event-data.recipient is not an address")
    headers = (event.get("message") or {}).get("headers") or {}
    message_id = str(headers.get("message-id", "")) if isinstance(headers, dict) else ""
    if kind == "complained":
        return [
            provider_report(
                "mailgun",
                email=email,
                severity=None,
                message_ids=[message_id],
                diagnostic="feedback abuse",
                raw=event,
            )
        ]
    status = event.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    code = str(status.get("code", ""))
    text = " ".join(str(status.get(name) or "") for name in ("message", "description"))
    severity = Severity.HARD if event.get("severity") == "permanent" else Severity.SOFT
    return [
        provider_report(
            "mailgun",
            email=email,
            severity=severity,
            message_ids=[message_id],
            diagnostic=f"{code} {text}".strip(),
            raw=event,
        )
    ]
