"""Which mail of ours a report is about. Nothing from outside is trusted for what it says.

A report counts only when it shows it concerns mail we sent:

1. it was delivered to a VERP address (`bounce+TOKEN@`) whose HMAC token
   verifies; a bounce+ or unsubscribe+ address whose token does not verify
   is a forgery, and nothing else in the message is looked at;
2. or it quotes what only the recipient of one of our mails has: a
   Message-ID we generated (unguessable, looked up by index) or a verified
   token from the original's Return-Path or List-Unsubscribe;
3. or it comes from a provider that proved who it is (a webhook with its
   signature checked): the mail went out through that provider, so the
   address it names is enough.

The address a mailbox report names never finds anybody by itself: it only
chooses among the recipients of the mail found (see `failure_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import token_rows, tokens
from mailer.bounces.report import Evidence, Failure, Outcome, Report, Severity
from mailer.errors import InvalidToken
from mailer.models import Delivery, Subscriber, TransactionalMail


@dataclass
class Target:
    """The mail and subscriber a report is about, and how we know."""

    email: str
    subscriber: Subscriber | None
    delivery: Delivery | None = None
    mail: TransactionalMail | None = None
    campaign_id: int | None = None
    via: str = "verp"  # verp, quoted, or address


# Each token is checked against the row it names (mailer.token_rows): a token
# whose row is gone cannot be checked at all (RowGone), so it proves nothing and
# counts as forged, like any other token that does not verify.
BOUNCE_READERS = (
    (token_rows.bounce_delivery, Delivery),
    (token_rows.bounce_mail, TransactionalMail),
)


def unsubscribe_ids(
    session: Session, token_list: tuple[str, ...], secret_key: tokens.Keys
) -> list[tuple[int, int]]:
    """(subscriber id, campaign id or 0) of each unsubscribe token that verifies."""
    found = []
    for token in token_list:
        try:
            subscriber_id, campaign_id = token_rows.one_click(session, secret_key, token)
        except InvalidToken:
            continue
        found.append((subscriber_id, campaign_id or 0))
    return found


def _bounce_rows(
    session: Session, token_list: tuple[str, ...], secret_key: tokens.Keys
) -> list[tuple[type, int]]:
    """(model, row id) each bounce token names, for the tokens that verify."""
    found: list[tuple[type, int]] = []
    for token in token_list:
        for read, model in BOUNCE_READERS:
            try:
                found.append((model, read(session, secret_key, token)))
            except InvalidToken:
                continue
    return found


def _of_delivery(session: Session, delivery: Delivery, via: str) -> Target | None:
    subscriber = session.get(Subscriber, delivery.subscriber_id, with_for_update=True)
    if subscriber is None:
        return None
    return Target(subscriber.email, subscriber, delivery, campaign_id=delivery.campaign_id, via=via)


def _of_mail(session: Session, mail: TransactionalMail, via: str) -> Target:
    subscriber = (
        session.get(Subscriber, mail.subscriber_id, with_for_update=True)
        if mail.subscriber_id
        else None
    )
    if subscriber is not None and subscriber.email != mail.email:
        subscriber = None  # e.g. a new address being confirmed: not this subscriber's address
    return Target(mail.email, subscriber, mail=mail, via=via)


def _by_tokens(
    session: Session, evidence: Evidence, secret_key: tokens.Keys, via: str
) -> Target | None:
    for model, row_id in _bounce_rows(session, evidence.bounce_tokens, secret_key):
        row = session.get(model, row_id, with_for_update=True)
        if isinstance(row, Delivery) and (target := _of_delivery(session, row, via)):
            return target
        if isinstance(row, TransactionalMail):
            return _of_mail(session, row, via)
    for subscriber_id, campaign_id in unsubscribe_ids(
        session, evidence.unsubscribe_tokens, secret_key
    ):
        subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
        if subscriber is not None:
            delivery = session.scalar(
                select(Delivery)
                .where(Delivery.campaign_id == campaign_id, Delivery.subscriber_id == subscriber_id)
                .with_for_update()
            )
            return Target(subscriber.email, subscriber, delivery, campaign_id or None, via)
    return None


def _by_message_id(session: Session, message_ids: tuple[str, ...]) -> Target | None:
    if not message_ids:
        return None
    for delivery in session.scalars(
        select(Delivery).where(Delivery.message_id.in_(message_ids)).with_for_update()
    ):
        if target := _of_delivery(session, delivery, "quoted"):
            return target
    mail = session.scalar(
        select(TransactionalMail)
        .where(TransactionalMail.message_id.in_(message_ids))
        .with_for_update()
        .limit(1)
    )
    return _of_mail(session, mail, "quoted") if mail is not None else None


def _by_address(session: Session, email: str) -> Target | None:
    subscriber = session.scalar(
        select(Subscriber).where(Subscriber.email == email).with_for_update()
    )
    return Target(subscriber.email, subscriber, via="address") if subscriber else None


def resolve(session: Session, report: Report, *, secret_key: tokens.Keys) -> Target | Outcome:
    """The mail a report is about; FORGED for a bad VERP token, UNMATCHED when none is shown."""
    claimed = report.envelope
    if claimed.bounce_tokens or claimed.unsubscribe_tokens:
        if not (
            _bounce_rows(session, claimed.bounce_tokens, secret_key)
            or unsubscribe_ids(session, claimed.unsubscribe_tokens, secret_key)
        ):
            return Outcome.FORGED
        # A valid token whose mail is gone (erased, purged) names nothing any more.
        return _by_tokens(session, claimed, secret_key, "verp") or Outcome.UNMATCHED
    found = _by_message_id(session, report.quoted.message_ids) or _by_tokens(
        session, report.quoted, secret_key, "quoted"
    )
    if found is None and report.authenticated and report.recipient:
        found = _by_address(session, report.recipient)
    return found or Outcome.UNMATCHED


def failure_for(report: Report, email: str) -> Failure | None:
    """The failure a report gives for `email`, the one recipient of the mail it is about.

    Others it names are not ours to act on. When it names none of them, the
    mail was forwarded (ann@ forwards to her old address, which bounced):
    the VERP address or Message-ID says it was our mail, so it counts.
    """
    mine = [failure for failure in report.failures if failure.address == email.lower()]
    candidates = mine or list(report.failures)
    if not candidates:
        return None
    return max(candidates, key=lambda failure: failure.severity is Severity.HARD)
