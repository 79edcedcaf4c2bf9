"""Bounce and complaint events posted over HTTP: the generic format of `POST /webhooks/bounce`.

The providers' own formats (mailer.bounces.providers) become the same
reports. Every event is checked before any is applied, so a bad one leaves
the batch unapplied and the sender can post it again corrected.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailer import tokens
from mailer.bounces import applying, standard
from mailer.bounces.report import (
    Evidence,
    Failure,
    InvalidEvents,
    Kind,
    Outcome,
    Report,
    Severity,
    clean,
)

EVENT_FIELDS = frozenset({"type", "email", "bounce_type", "message_id", "diagnostic"})
EVENT_KINDS = {
    ("bounce", "hard"): Severity.HARD,
    ("bounce", "soft"): Severity.SOFT,
    ("complaint", None): None,
}
MAX_EVENTS = 1000


def message_id(value: object) -> str:
    """`<id@host>` from a Message-ID with or without its brackets; "" when unusable."""
    text = " ".join(str(value or "").split())
    if not text or len(text) > 250:
        return ""
    return text if text.startswith("<") else f"<{text}>"


def provider_report(
    source: str,
    *,
    email: str,
    severity: Severity | None,
    message_ids: Sequence[str] = (),
    status: str = "",
    diagnostic: str = "",
    raw: object = None,
) -> Report:
    """A report from a provider that proved who it is: a bounce, or a complaint when
    `severity` is None."""
    ids = tuple(found for found in (message_id(value) for value in message_ids) if found)
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
    diagnostic = clean(diagnostic)
    if severity is None:
        failures: tuple[Failure, ...] = ()
    else:
        status = status or standard.status_code(diagnostic)
        failures = (Failure(email, severity, status, diagnostic),)
    return Report(
        Kind.COMPLAINT if severity is None else Kind.BOUNCE,
        failures,
        quoted=Evidence(message_ids=ids),
        recipient=email,
        diagnostic=diagnostic,
        source=source,
        authenticated=True,
        raw=text[: applying.MAX_RAW],
    )


def reports_from_events(payload: Any) -> list[Report]:
    """The webhook body as reports; InvalidEvents naming the first problem, before any change."""
    if not isinstance(payload, dict) or "events" not in payload:
        raise InvalidEvents('the body must be a JSON object {"events": [...]}')
    unknown = sorted(set(payload) - {"events"})
    if unknown:
        raise InvalidEvents(f"unknown field {unknown[0]!r}")
    events = payload["events"]
    if not isinstance(events, list) or not events or len(events) > MAX_EVENTS:
        raise InvalidEvents(f"events must be a list of 1 to {MAX_EVENTS} objects")
    return [_event(number, event) for number, event in enumerate(events)]


def _event(number: int, event: Any) -> Report:
    where = f"events[{number}]"
    if not isinstance(event, dict):
        raise InvalidEvents(f"{where} must be an object")
    unknown = sorted(set(event) - EVENT_FIELDS)
    if unknown:
        raise InvalidEvents(f"{where} has unknown field {unknown[0]!r}")
    for name in EVENT_FIELDS & set(event):
        if not isinstance(event[name], str):
            raise InvalidEvents(f"{where}.{name} must be a string")
    key = (event.get("type", ""), event.get("bounce_type"))
    if key not in EVENT_KINDS:
        if event.get("type") == "bounce":
            raise InvalidEvents(f'{where}.bounce_type must be "hard" or "soft"')
        if event.get("type") == "complaint":
            raise InvalidEvents(f"{where}.bounce_type is for bounces only")
        raise InvalidEvents(f'{where}.type must be "bounce" or "complaint"')
    email = standard.address(event.get("email"))
    if event.get("email") and not email:
        raise InvalidEvents(f"{where}.email is not an address")
    found_id = message_id(event.get("message_id"))
    if event.get("message_id") and not found_id:
        raise InvalidEvents(f"{where}.message_id is too long")
    if not email and not found_id:
        raise InvalidEvents(f"{where} needs an email or a message_id")
    return provider_report(
        "webhook",
        email=email,
        severity=EVENT_KINDS[key],
        message_ids=[found_id] if found_id else [],
        diagnostic=event.get("diagnostic", ""),
        raw=event,
    )


def apply_reports(
    session: Session, reports: Sequence[Report], *, secret_key: tokens.Keys, now: datetime
) -> Counter[str]:
    """Apply checked reports in the caller's transaction; the count of each outcome."""
    outcomes: Counter[str] = Counter()
    for report in reports:
        outcome: Outcome = applying.apply(session, report, secret_key=secret_key, now=now)
        outcomes[outcome] += 1
    return outcomes


def apply_events(
    session: Session, payload: Any, *, secret_key: tokens.Keys, now: datetime
) -> Counter[str]:
    """Check every generic webhook event, then apply them all in the caller's transaction."""
    return apply_reports(session, reports_from_events(payload), secret_key=secret_key, now=now)
