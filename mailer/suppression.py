"""The one suppression list: addresses that get no list mail, whatever their subscriber row says.

Looked up by the SHA-256 of the normalised address, so an erased subscriber
(whose address itself is gone) stays blocked. Campaign planning and sending
match on the address column too, which is faster and enough for everyone
not erased: an erased subscriber has no row left to plan.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.models import Suppression, SuppressionReason

# Reasons a new signup through the form, confirmed by the reader, lifts:
# the person chose to come back. Bounces, complaints and "this wasn't me" stay.
LIFTED_BY_OPT_IN = frozenset({SuppressionReason.UNSUBSCRIBED, SuppressionReason.ERASED})
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def address_hash(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


def suppress(session: Session, email: str, reason: SuppressionReason, *, now: datetime) -> None:
    """Add `email` to the list; a second reason for a listed address keeps the first."""
    insert = _INSERT[session.get_bind().dialect.name](Suppression)
    session.execute(
        insert.values(
            email=email, email_hash=address_hash(email), reason=reason, created_at=now
        ).on_conflict_do_nothing()
    )


def reason_for(session: Session, email: str) -> str | None:
    """Why `email` is suppressed, or None."""
    return session.scalar(
        select(Suppression.reason).where(Suppression.email_hash == address_hash(email))
    )


def lift(session: Session, email: str, *, reasons: frozenset[str] = LIFTED_BY_OPT_IN) -> bool:
    """Remove the entry for `email` if its reason is one of `reasons`; say whether it went."""
    result = session.execute(
        delete(Suppression).where(
            Suppression.email_hash == address_hash(email), Suppression.reason.in_(reasons)
        )
    )
    return bool(result.rowcount)


def forget_address(session: Session, email: str, *, now: datetime) -> None:
    """Erasure: keep only the hash, with reason `erased` (GDPR Art. 17 and never mail again)."""
    digest = address_hash(email)
    session.execute(delete(Suppression).where(Suppression.email_hash == digest))
    session.add(
        Suppression(email=None, email_hash=digest, reason=SuppressionReason.ERASED, created_at=now)
    )
    session.flush()
