"""Bounces, complaints and mailto unsubscribes: read one incoming report, then apply it.

Reports come by mail (delivery status notifications, RFC 3464; ARF complaints,
RFC 5965; mail to the List-Unsubscribe mailto) or from a relay's webhook, and
both paths end in `apply`. A report names the mail it is about by the VERP
address it was sent to (`bounce+TOKEN@`, an HMAC token made when the mail
went out), so nobody can bounce an address they merely know. Without a token
the original's Message-ID is used, then the reported recipient if that is one
of our subscribers. A token that is there but does not verify changes nothing.

Soft bounces count "in a row": a soft bounce sets Subscriber.soft_bounces to
one more than before, unless a campaign mail went to the subscriber between
the previous soft-bounced mail and this one without a bounce reported for it;
then the run starts again at 1. The third in a row suppresses the address.
Each mail counts once, however many reports (delayed, then failed) arrive;
a report that names no mail (a webhook event with only an address) just counts.
"""

from __future__ import annotations

import enum
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailer import subscriptions, suppression, token_rows, tokens
from mailer.errors import InvalidToken, MailerError
from mailer.models import (
    Delivery,
    DeliveryStatus,
    MailStatus,
    Subscriber,
    SuppressionReason,
    TransactionalMail,
)

log = logging.getLogger("mailer.bounces")

SOFT_BOUNCES_TO_SUPPRESS = 3
HARD_MARK, SOFT_MARK = "hard bounce", "soft bounce"  # how last_error records a report
MAX_DIAGNOSTIC = 500

# Where a report says whom it is for: the envelope recipient the mailbox was
# given, then what the receiving MTA wrote down, then the header.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To")
TOKEN_ADDRESS = re.compile(r"\b(bounce|unsubscribe)\+([0-9a-z-]{1,80})@", re.IGNORECASE)
STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")
ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class Kind(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"  # mail to the List-Unsubscribe mailto
    OTHER = "other"  # not a report we act on: an auto-reply, a "delivered" DSN, ...


class Outcome(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBED = "unsubscribed"
    DUPLICATE = "duplicate"  # applied before: nothing changed
    UNMATCHED = "unmatched"  # a genuine report about no mail or subscriber we know
    FORGED = "forged"  # a token that does not verify
    IGNORED = "ignored"  # not a report (Kind.OTHER)
    MALFORMED = "malformed"


# What a mailbox leaves for a person to look at instead of marking it done.
NEEDS_A_HUMAN = frozenset({Outcome.FORGED, Outcome.IGNORED, Outcome.MALFORMED})


class MalformedReport(MailerError):
    """A message that claims to be a report but cannot be read as one; says what is wrong."""


class InvalidEvents(MailerError):
    """A webhook body that is not what the README documents; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Report:
    """What one incoming report says, before it is matched to our records."""

    kind: Kind
    bounce_tokens: tuple[str, ...] = ()  # after `bounce+`: names a Delivery or TransactionalMail
    unsubscribe_tokens: tuple[str, ...] = ()  # after `unsubscribe+`: subscriber and campaign
    recipient: str = ""  # the address the report is about, normalised
    message_id: str = ""  # the Message-ID of the mail it is about
    diagnostic: str = ""


# ---------------------------------------------------------------- reading a message


def parse(raw: bytes, *, envelope_to: str = "") -> Report:
    """Classify one message; raise MalformedReport when it is a report we cannot read."""
    try:
        message = message_from_bytes(raw, policy=policy.compat32)
        return _classify(message, envelope_to)
    except MalformedReport:
        raise
    except Exception as error:  # the email package has many ways to fail on junk
        raise MalformedReport(f"unreadable message: {type(error).__name__}: {error}") from None


def _tokens(values: Iterable[str], prefix: str) -> tuple[str, ...]:
    found = []
    for value in values:
        for match in TOKEN_ADDRESS.finditer(value):
            if match.group(1).lower() == prefix:
                found.append(match.group(2).lower())
    return tuple(dict.fromkeys(found))


def _header_values(message: Message, names: Sequence[str]) -> list[str]:
    return [str(value) for name in names for value in (message.get_all(name) or [])]


def _classify(message: Message, envelope_to: str) -> Report:
    addressed_to = [envelope_to, *_header_values(message, RECIPIENT_HEADERS)]
    unsubscribe = _tokens(addressed_to, "unsubscribe")
    if unsubscribe:
        return Report(Kind.UNSUBSCRIBE, unsubscribe_tokens=unsubscribe)
    bounce = _tokens(addressed_to, "bounce")
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type == "delivery-status":
            return _delivery_status(message, bounce)
        if report_type == "feedback-report":
            return _feedback(message, bounce)
    return Report(Kind.OTHER, bounce_tokens=bounce)


def _parts(message: Message) -> list[Message]:
    payload = message.get_payload()
    if not isinstance(payload, list):
        raise MalformedReport("a multipart/report without parts")
    return payload


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    body = part.get_payload(decode=True) or b""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", text.strip())]


def _original(parts: Sequence[Message]) -> Message | None:
    """The headers of the mail the report is about, when the report includes them."""
    for part in parts:
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if kind in ("text/rfc822-headers", "text/global-headers"):
            body = part.get_payload(decode=True) or b""
            return HeaderParser().parsestr(body.decode("utf-8", errors="replace"))
    return None


def _address(value: str | None) -> str:
    """`rfc822; Ann@Example.org` -> `ann@example.org`; "" when it is no usable address."""
    text = str(value or "").strip()
    if ";" in text:
        text = text.split(";", 1)[1]
    text = text.strip().strip("<>").strip().lower()
    return text if len(text) <= 320 and ADDRESS.match(text) else ""


def _message_id(value: str | None) -> str:
    text = " ".join(str(value or "").split())
    if not text or len(text) > 250:
        return ""
    return text if text.startswith("<") else f"<{text}>"


def _clean(text: str) -> str:
    return " ".join(str(text).split())[:MAX_DIAGNOSTIC]


def _delivery_status(message: Message, bounce: tuple[str, ...]) -> Report:
    parts = _parts(message)
    status_part = next(
        (
            part
            for part in parts
            if part.get_content_type()
            in ("message/delivery-status", "message/global-delivery-status")
        ),
        None,
    )
    if status_part is None:
        raise MalformedReport("a delivery-status report without a message/delivery-status part")
    # The first block is about the message (Reporting-MTA); the others each about a recipient.
    recipients = [block for block in _blocks(status_part) if block.get("Action")]
    if not recipients:
        raise MalformedReport("a delivery-status report without per-recipient fields")
    severity = {Kind.HARD_BOUNCE: 2, Kind.SOFT_BOUNCE: 1, Kind.OTHER: 0}
    worst: tuple[Kind, Message, str] | None = None
    for block in recipients:
        action = str(block.get("Action", "")).strip().lower()
        status = str(block.get("Status", "")).strip().split(" ")[0]
        match = STATUS.match(status)
        if action not in ACTIONS or match is None:
            raise MalformedReport(f"recipient fields with Action {action!r}, Status {status!r}")
        if action == "failed":
            kind = Kind.HARD_BOUNCE if match.group(1) == "5" else Kind.SOFT_BOUNCE
        else:
            kind = Kind.SOFT_BOUNCE if action == "delayed" else Kind.OTHER
        if worst is None or severity[kind] > severity[worst[0]]:
            worst = (kind, block, status)
    assert worst is not None  # noqa: S101 - type narrowing: the loop ran (blocks is not empty)
    kind, block, status = worst
    code = str(block.get("Diagnostic-Code", "")).strip()
    diagnostic = _clean(f"{status} {code.split(';', 1)[-1] if code else ''}")
    original = _original(parts)
    return Report(
        kind,
        bounce_tokens=bounce + (_original_tokens(original, "bounce") if original else ()),
        recipient=_address(block.get("Original-Recipient"))
        or _address(block.get("Final-Recipient")),
        message_id=_message_id(original.get("Message-ID")) if original else "",
        diagnostic=diagnostic,
    )


def _original_tokens(original: Message, prefix: str) -> tuple[str, ...]:
    # The receiving MTA records our envelope sender as Return-Path; the
    # List-Unsubscribe mailto names subscriber and campaign.
    return _tokens(_header_values(original, ("Return-Path", "List-Unsubscribe")), prefix)


def _feedback(message: Message, bounce: tuple[str, ...]) -> Report:
    parts = _parts(message)
    part = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        raise MalformedReport("a feedback report without a message/feedback-report part")
    fields: dict[str, str] = {}
    for block in _blocks(part):
        fields.update({key.lower(): str(value) for key, value in block.items()})
    feedback_type = fields.get("feedback-type", "").strip().lower()
    if not feedback_type:
        raise MalformedReport("a feedback report without Feedback-Type")
    original = _original(parts)
    kind = Kind.OTHER if feedback_type == "not-spam" else Kind.COMPLAINT
    recipient = _address(fields.get("original-rcpt-to"))
    if original is not None and not recipient:
        recipient = _address(original.get("To"))
    return Report(
        kind,
        bounce_tokens=bounce + (_original_tokens(original, "bounce") if original else ()),
        unsubscribe_tokens=_original_tokens(original, "unsubscribe") if original else (),
        recipient=recipient,
        message_id=_message_id(original.get("Message-ID")) if original else "",
        diagnostic=_clean(f"feedback {feedback_type}"),
    )


# ---------------------------------------------------------------- matching and applying


@dataclass
class Target:
    """The mail and subscriber a report is about."""

    email: str
    subscriber: Subscriber | None
    delivery: Delivery | None = None
    mail: TransactionalMail | None = None
    campaign_id: int | None = None


def _subscriber_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == email).with_for_update())


def _of_delivery(session: Session, delivery: Delivery) -> Target | None:
    subscriber = session.get(Subscriber, delivery.subscriber_id, with_for_update=True)
    if subscriber is None:
        return None
    return Target(subscriber.email, subscriber, delivery=delivery, campaign_id=delivery.campaign_id)


def _of_mail(session: Session, mail: TransactionalMail) -> Target:
    subscriber = (
        session.get(Subscriber, mail.subscriber_id, with_for_update=True)
        if mail.subscriber_id
        else None
    )
    if subscriber is not None and subscriber.email != mail.email:
        subscriber = None  # e.g. a new address being confirmed: not this subscriber's address
    return Target(mail.email, subscriber, mail=mail)


def _unsubscribe_ids(
    session: Session, report: Report, secret_key: tokens.Keys
) -> Iterator[tuple[int, int]]:
    """(subscriber id, campaign id or 0) of each unsubscribe token that verifies."""
    for token in report.unsubscribe_tokens:
        try:
            subscriber_id, campaign_id = token_rows.one_click(session, secret_key, token)
        except InvalidToken:
            continue
        yield subscriber_id, campaign_id or 0


def _by_token(session: Session, report: Report, secret_key: tokens.Keys) -> Target | Outcome | None:
    """The target a valid token names; FORGED when tokens are there but none verifies.

    A token is checked against the row it names (mailer.token_rows); one whose
    row is gone cannot be checked and counts as not verified.
    """
    valid = False
    for token in report.bounce_tokens:
        for read, model in (
            (token_rows.bounce_delivery, Delivery),
            (token_rows.bounce_mail, TransactionalMail),
        ):
            try:
                row_id = read(session, secret_key, token)
            except InvalidToken:  # also RowGone: a token that cannot be checked proves nothing
                continue
            valid = True
            row = session.get(model, row_id, with_for_update=True)
            if isinstance(row, Delivery) and (target := _of_delivery(session, row)):
                return target
            if isinstance(row, TransactionalMail):
                return _of_mail(session, row)
    for subscriber_id, campaign_id in _unsubscribe_ids(session, report, secret_key):
        valid = True
        subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
        if subscriber is not None:
            delivery = session.scalar(
                select(Delivery)
                .where(Delivery.campaign_id == campaign_id, Delivery.subscriber_id == subscriber_id)
                .with_for_update()
            )
            return Target(subscriber.email, subscriber, delivery, campaign_id=campaign_id or None)
    if (report.bounce_tokens or report.unsubscribe_tokens) and not valid:
        return Outcome.FORGED
    return None  # a valid token whose mail is gone (purged): the fallbacks may still know it


def resolve(session: Session, report: Report, *, secret_key: tokens.Keys) -> Target | Outcome:
    """Match a report to our records: token, then Message-ID, then a subscriber's address.

    Returns Outcome.FORGED for a token that does not verify, UNMATCHED when nothing matches.
    """
    found = _by_token(session, report, secret_key)
    if found is not None:
        return found
    if report.message_id:
        # No index on message_id: this is the rare path of relays that drop the VERP address.
        delivery = session.scalar(
            select(Delivery).where(Delivery.message_id == report.message_id).with_for_update()
        )
        if delivery is not None and (target := _of_delivery(session, delivery)):
            return target
        mail = session.scalar(
            select(TransactionalMail)
            .where(TransactionalMail.message_id == report.message_id)
            .with_for_update()
        )
        if mail is not None:
            return _of_mail(session, mail)
    if report.recipient:
        subscriber = _subscriber_by_email(session, report.recipient)
        if subscriber is not None:
            return Target(subscriber.email, subscriber)
    return Outcome.UNMATCHED


def apply(session: Session, report: Report, *, secret_key: tokens.Keys, now: datetime) -> Outcome:
    """Apply one report in the caller's transaction; a report applied before changes nothing."""
    if report.kind == Kind.OTHER:
        return Outcome.IGNORED
    if report.kind == Kind.UNSUBSCRIBE:
        return _unsubscribe(session, report, secret_key=secret_key, now=now)
    target = resolve(session, report, secret_key=secret_key)
    if isinstance(target, Outcome):
        return target
    if report.kind == Kind.HARD_BOUNCE:
        return _hard(session, target, report.diagnostic, now)
    if report.kind == Kind.SOFT_BOUNCE:
        return _soft(session, target, report.diagnostic, now)
    return _complaint(session, target, now)


def _unsubscribe(
    session: Session, report: Report, *, secret_key: tokens.Keys, now: datetime
) -> Outcome:
    for subscriber_id, campaign_id in _unsubscribe_ids(session, report, secret_key):
        try:
            changed = subscriptions.unsubscribe(
                session, subscriber_id, now=now, channel="mailto", campaign_id=campaign_id or None
            )
        except InvalidToken:  # the subscriber was erased meanwhile
            return Outcome.UNMATCHED
        return Outcome.UNSUBSCRIBED if changed else Outcome.DUPLICATE
    return Outcome.FORGED


def _suppress(session: Session, email: str, reason: SuppressionReason, now: datetime) -> bool:
    """Suppress `email`; say whether it was not suppressed before."""
    before = suppression.reason_for(session, email)
    suppression.suppress(session, email, reason, now=now)
    return before is None


def _hard(session: Session, target: Target, diagnostic: str, now: datetime) -> Outcome:
    changed = False
    note = f"{HARD_MARK}: {diagnostic}"
    if target.delivery is not None and target.delivery.status != DeliveryStatus.BOUNCED:
        target.delivery.status, target.delivery.last_error = DeliveryStatus.BOUNCED, note
        changed = True
    if target.mail is not None and not target.mail.last_error.startswith(HARD_MARK):
        target.mail.status, target.mail.last_error = MailStatus.FAILED, note
        changed = True
    changed |= _suppress(session, target.email, SuppressionReason.HARD_BOUNCE, now)
    return Outcome.HARD_BOUNCE if changed else Outcome.DUPLICATE


def _soft(session: Session, target: Target, diagnostic: str, now: datetime) -> Outcome:
    row: Delivery | TransactionalMail | None = target.delivery or target.mail
    if row is not None:
        if row.last_error.startswith((SOFT_MARK, HARD_MARK)) or row.status in (
            DeliveryStatus.BOUNCED,
            MailStatus.FAILED,
        ):
            return Outcome.DUPLICATE  # this mail counted already (a delayed, then a failed DSN)
        row.last_error = f"{SOFT_MARK}: {diagnostic}"
    subscriber = target.subscriber
    if subscriber is None:
        return Outcome.SOFT_BOUNCE
    # A report that names no mail of ours (a webhook event with only an address)
    # cannot be placed in the run: it simply counts.
    if row is not None and _run_broken(session, subscriber.id, row.sent_at or now, row):
        subscriber.soft_bounces = 1
    else:
        subscriber.soft_bounces += 1
    if subscriber.soft_bounces >= SOFT_BOUNCES_TO_SUPPRESS:
        _suppress(session, subscriber.email, SuppressionReason.SOFT_BOUNCES, now)
    session.flush()
    return Outcome.SOFT_BOUNCE


def _run_broken(
    session: Session, subscriber_id: int, sent_at: datetime, row: object | None
) -> bool:
    """Did a campaign mail get through between the previous soft-bounced mail and this one?"""
    previous = [
        session.scalar(
            select(func.max(model.sent_at)).where(
                model.subscriber_id == subscriber_id,
                model.last_error.startswith(SOFT_MARK),
                model.sent_at < sent_at,
                model.id != (row.id if isinstance(row, model) else -1),
            )
        )
        for model in (Delivery, TransactionalMail)
    ]
    since = max((moment for moment in previous if moment is not None), default=None)
    went_through = exists().where(
        Delivery.subscriber_id == subscriber_id,
        Delivery.status == DeliveryStatus.SENT,
        ~Delivery.last_error.startswith(SOFT_MARK),
        Delivery.sent_at < sent_at,
        *([Delivery.sent_at > since] if since is not None else []),
    )
    return bool(session.scalar(select(went_through)))


def _complaint(session: Session, target: Target, now: datetime) -> Outcome:
    changed = _suppress(session, target.email, SuppressionReason.COMPLAINT, now)
    if target.subscriber is not None:
        changed |= subscriptions.unsubscribe(
            session,
            target.subscriber.id,
            now=now,
            channel="complaint",
            campaign_id=target.campaign_id,
        )
    return Outcome.COMPLAINT if changed else Outcome.DUPLICATE


# ---------------------------------------------------------------- entry points


def process_message(
    factory: sessionmaker[Session],
    raw: bytes,
    *,
    secret_key: tokens.Keys,
    clock: Callable[[], datetime],
    envelope_to: str = "",
    label: str = "",
) -> Outcome:
    """Read and apply one incoming message in its own transaction; never raise for bad input.

    Database trouble does raise: the message is then left for the next run.
    Anything else one message sets off is its own problem: it is logged and
    the message kept for a person, so it cannot hold up the rest of the mailbox.
    """
    try:
        report = parse(raw, envelope_to=envelope_to)
    except MalformedReport as error:
        log.warning("bounce mailbox: skipped malformed message %s: %s", label, error)
        return Outcome.MALFORMED
    with factory() as session:
        try:
            outcome = apply(session, report, secret_key=secret_key, now=clock())
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            session.rollback()
            log.exception("bounce mailbox: skipped message %s: it could not be applied", label)
            return Outcome.MALFORMED
        session.commit()
    log.info("bounce mailbox: message %s: %s", label, outcome)
    return outcome


EVENT_FIELDS = frozenset({"type", "email", "bounce_type", "message_id", "diagnostic"})
EVENT_KINDS = {
    ("bounce", "hard"): Kind.HARD_BOUNCE,
    ("bounce", "soft"): Kind.SOFT_BOUNCE,
    ("complaint", None): Kind.COMPLAINT,
}
MAX_EVENTS = 1000


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
    kind = EVENT_KINDS.get((event.get("type", ""), event.get("bounce_type")))
    if kind is None:
        if event.get("type") == "bounce":
            raise InvalidEvents(f'{where}.bounce_type must be "hard" or "soft"')
        if event.get("type") == "complaint":
            raise InvalidEvents(f"{where}.bounce_type is for bounces only")
        raise InvalidEvents(f'{where}.type must be "bounce" or "complaint"')
    email = _address(event.get("email"))
    if event.get("email") and not email:
        raise InvalidEvents(f"{where}.email is not an address")
    message_id = _message_id(event.get("message_id"))
    if event.get("message_id") and not message_id:
        raise InvalidEvents(f"{where}.message_id is too long")
    if not email and not message_id:
        raise InvalidEvents(f"{where} needs an email or a message_id")
    return Report(
        kind, recipient=email, message_id=message_id, diagnostic=_clean(event.get("diagnostic", ""))
    )


def apply_events(
    session: Session, payload: Any, *, secret_key: tokens.Keys, now: datetime
) -> Counter[str]:
    """Check every webhook event, then apply them all in the caller's transaction."""
    reports = reports_from_events(payload)
    return Counter(apply(session, report, secret_key=secret_key, now=now) for report in reports)
