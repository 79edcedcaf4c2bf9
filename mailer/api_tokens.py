"""Bearer tokens for the CMS API: shown once at creation, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.errors import InvalidTokenName
from mailer.models import ApiToken


def _digest(token: str) -> str:
    # A plain hash is enough: the token carries 256 random bits, so there is
    # nothing to brute-force that a slow, salted hash would protect.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(session: Session, *, name: str, now: datetime) -> str:
    """Store a new token under `name` and return its plaintext, which is never stored.

    The name says who holds the token (e.g. "cms"), so one can be told from another.
    """
    name = " ".join(name.split())
    if not name:
        raise InvalidTokenName("name is required")
    if len(name) > 100:
        raise InvalidTokenName("name must be at most 100 characters")
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=_digest(token), created_at=now))
    session.flush()
    return token


def authenticate(session: Session, token: str, *, now: datetime) -> int | None:
    """Return the id of the token's row and note its use, or None for an unknown token.

    The look-up goes by digest through the unique index, so the stored value
    is never compared with attacker-chosen text byte by byte.
    """
    if not token:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if row is None:
        return None
    row.last_used_at = now
    session.flush()
    return row.id
