"""Postmark's bounce and spam-complaint webhooks, behind basic auth over https.

Postmark signs nothing; the webhook URL carries a user and password
(MAILER_POSTMARK_WEBHOOK_AUTH), which the view checks, and only over https.
Postmark's MessageID is its own, but the bounce's `Content` (the full
report) quotes our Message-ID when Postmark kept it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from mailer.bounces import mime, standard
from mailer.bounces.events import provider_report
from mailer.bounces.providers import Refused
from mailer.bounces.report import InvalidEvents, Report, Severity

HARD = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
SOFT = frozenset({"SoftBounce", "Transient", "DnsError", "SpamNotification", "Blocked"})


def check_auth(header: str, expected: str, *, secure: bool) -> None:
    """Refused unless the request came over https with the configured user:password."""
    if not secure:
        raise Refused(403, "the Postmark webhook is served over https only")
    scheme, _, encoded = header.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(given, expected.encode()):
        raise Refused(401, "basic auth with the configured user and password is required")


def reports(payload: Any) -> list[Report]:
    """A Bounce or SpamComplaint record as a report; other records are not ours to act on."""
    if not isinstance(payload, dict):
        raise InvalidEvents("the body must be a Postmark webhook record (JSON object)")
    record, kind = payload.get("RecordType"), payload.get("Type")
    if record not in ("Bounce", "SpamComplaint"):
        return []
    email = standard.address(payload.get("Email"))
    if not email:
        raise InvalidEvents("Email is not an address")
    content = str(payload.get("Content") or "")[: mime.MAX_TEXT]
    message_ids = mime.MESSAGE_ID_LINE.findall(content)
    if record == "SpamComplaint" or kind == "SpamComplaint":
        severity: Severity | None = None
    elif kind in HARD:
        severity = Severity.HARD
    elif kind in SOFT:
        severity = Severity.SOFT
    else:
        return []  # AutoResponder, Unsubscribe, OpenRelayTest, ...: nobody bounced
    return [
        provider_report(
            "postmark",
            email=email,
            severity=severity,
            message_ids=message_ids,
            diagnostic=str(payload.get("Details") or payload.get("Description") or ""),
            raw=payload,
        )
    ]
