"""The one suppression list: addresses that get no list mail, whatever their subscriber row says.

Looked up by a keyed hash of the normalised address, so an erased subscriber
(whose address itself is gone) stays blocked, while the hash alone confirms
nothing to whoever reads the table: hashing a guessed address needs the
suppression key, which lives in the environment, not in the database.
Campaign planning and sending match on the address column too, which is
faster and enough for everyone not erased: an erased subscriber has no row
left to plan.

The key is MAILER_SUPPRESSION_KEY, else one derived from MAILER_SECRET_KEY.
Lookups try every key the settings know (the suppression key, then those
derived from the current and the old secret keys): a rotation of the secret
key never lets a suppressed address through. `rekey` moves the rows whose
address is known to the current key; an erased row keeps the key it was made
with, and stays matchable as long as that key is configured. That is why a
site that will rotate its secret key should set MAILER_SUPPRESSION_KEY once
and keep it (SECURITY.md).

Domain functions reach the keys through the session (`session.info`, filled
by the app's sessionmaker), so no caller passes them around.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.models import Suppression, SuppressionReason
from mailer.settings import Settings

# Reasons a new signup through the form, confirmed by the reader, lifts:
# the person chose to come back. Bounces, complaints and "this wasn't me" stay.
LIFTED_BY_OPT_IN = frozenset({SuppressionReason.UNSUBSCRIBED, SuppressionReason.ERASED})
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
INFO_KEY = "mailer.suppression_keys"


def _derived(secret_key: str) -> str:
    return hmac.new(secret_key.encode(), b"mailer.suppression-key", hashlib.sha256).hexdigest()


def keys_for(settings: Settings) -> tuple[str, ...]:
    """The hash keys, the one new rows are made with first."""
    candidates = [settings.suppression_key] if settings.suppression_key else []
    candidates += [_derived(key) for key in settings.secret_keys]
    return tuple(dict.fromkeys(candidates))


def keyed_hash(key: str, email: str) -> str:
    """HMAC of the address's SHA-256: the inner hash lets migration 0010 key the old rows."""
    inner = hashlib.sha256(email.encode()).hexdigest()
    return hmac.new(key.encode(), inner.encode(), hashlib.sha256).hexdigest()


def _keys(session: Session) -> tuple[str, ...]:
    keys = session.info.get(INFO_KEY)
    if not keys:
        raise RuntimeError("this session has no suppression keys: use the app's sessionmaker")
    return keys


def address_hash(session: Session, email: str) -> str:
    """The hash new rows for `email` get."""
    return keyed_hash(_keys(session)[0], email)


def address_hashes(session: Session, email: str) -> list[str]:
    """Every hash `email` may be stored under (one per configured key)."""
    return [keyed_hash(key, email) for key in _keys(session)]


def suppress(session: Session, email: str, reason: SuppressionReason, *, now: datetime) -> None:
    """Add `email` to the list; a second reason for a listed address keeps the first."""
    if reason_for(session, email) is not None:
        return
    insert = _INSERT[session.get_bind().dialect.name](Suppression)
    session.execute(
        insert.values(
            email=email, email_hash=address_hash(session, email), reason=reason, created_at=now
        ).on_conflict_do_nothing()
    )


def reason_for(session: Session, email: str) -> str | None:
    """Why `email` is suppressed, or None."""
    return session.scalar(
        select(Suppression.reason)
        .where(Suppression.email_hash.in_(address_hashes(session, email)))
        .limit(1)
    )


def lift(session: Session, email: str, *, reasons: frozenset[str] = LIFTED_BY_OPT_IN) -> bool:
    """Remove the entry for `email` if its reason is one of `reasons`; say whether it went."""
    result = session.execute(
        delete(Suppression).where(
            Suppression.email_hash.in_(address_hashes(session, email)),
            Suppression.reason.in_(reasons),
        )
    )
    return bool(result.rowcount)


def forget_address(session: Session, email: str, *, now: datetime) -> None:
    """Erasure: keep only the hash, with reason `erased` (GDPR Art. 17 and never mail again)."""
    session.execute(
        delete(Suppression).where(Suppression.email_hash.in_(address_hashes(session, email)))
    )
    session.add(
        Suppression(
            email=None,
            email_hash=address_hash(session, email),
            reason=SuppressionReason.ERASED,
            created_at=now,
        )
    )
    session.flush()


def rekey(session: Session) -> int:
    """Move every row whose address is known to the current key; return how many moved."""
    moved = 0
    for row_id, email, stored in session.execute(
        select(Suppression.id, Suppression.email, Suppression.email_hash).where(
            Suppression.email.is_not(None)
        )
    ):
        current = address_hash(session, email)
        if stored != current:
            session.execute(
                update(Suppression).where(Suppression.id == row_id).values(email_hash=current)
            )
            moved += 1
    return moved
