"""Sending providers' own bounce and complaint webhooks, each proving who sent it.

Every module here turns one request (body and headers) into reports, after
checking the provider's proof: Amazon SES through SNS (an RSA signature by
Amazon's certificate), SendGrid (an ECDSA signature), Mailgun (an HMAC with
the signing key), Postmark (basic auth over https, checked by the view).
A call that fails its check raises Refused, and nothing is applied. Mailgun
tokens, SendGrid signatures and SNS message ids are remembered, so the same
call twice is refused as a replay.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.errors import MailerError
from mailer.models import WebhookNonce

# How old a signed call may be. Past it, its one-time value is forgotten.
MAX_AGE = timedelta(minutes=10)
NONCE_KEEP = timedelta(days=2)
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class Refused(MailerError):
    """A call that does not prove it comes from the provider, or comes again."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_fresh(moment: datetime, now: datetime, max_age: timedelta = MAX_AGE) -> None:
    """Refuse a call signed too long ago (or too far in the future) to be a live one."""
    if abs(now - moment) > max_age:
        raise Refused(403, f"the signed timestamp is more than {max_age} away from now")


def remember_once(session: Session, provider: str, value: str, *, now: datetime) -> None:
    """Record a one-time value; Refused (403) when it was seen before: a replay."""
    digest = hashlib.sha256(value.encode()).hexdigest()
    session.execute(delete(WebhookNonce).where(WebhookNonce.seen_at < now - NONCE_KEEP))
    insert = _INSERT[session.get_bind().dialect.name](WebhookNonce)
    inserted = session.scalar(
        insert.values(provider=provider, value_hash=digest, seen_at=now)
        .on_conflict_do_nothing()
        .returning(WebhookNonce.id)
    )
    if inserted is None:
        raise Refused(403, "this call was accepted before: a replay")
