"""Console sessions kept on the server: a session is a row, and deleting the row ends it.

The browser's (signed) cookie carries a random token; only its SHA-256 is
stored. Logout deletes that session's row; a password change, a
deactivation or a reset of two-factor sign-in deletes every row of the
account, so a copied cookie is worth nothing afterwards. A session also
ends when it has been idle too long or is too old, whatever it does.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.models import AdminSession

TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: stored as UTC


def start(session: Session, admin_id: int, *, now: datetime) -> str:
    """Open a session for the account; return the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    session.add(
        AdminSession(token_hash=_hash(token), admin_id=admin_id, created_at=now, last_seen_at=now)
    )
    session.flush()
    return token


def check(
    session: Session, token: str, *, now: datetime, idle: timedelta, lifetime: timedelta
) -> int | None:
    """The account of a live session, or None (ended, idle too long, or too old)."""
    row = session.scalar(select(AdminSession).where(AdminSession.token_hash == _hash(token)))
    if row is None:
        return None
    if now - _aware(row.last_seen_at) > idle or now - _aware(row.created_at) > lifetime:
        session.delete(row)
        session.flush()
        return None
    if now - _aware(row.last_seen_at) > TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return row.admin_id


def end(session: Session, token: str) -> None:
    """Logout: this session only."""
    session.execute(delete(AdminSession).where(AdminSession.token_hash == _hash(token)))


def end_all(session: Session, admin_id: int) -> int:
    """Every session of the account (password change, deactivation); return how many."""
    result = session.execute(delete(AdminSession).where(AdminSession.admin_id == admin_id))
    return result.rowcount or 0
