"""Failed console logins, counted per (account name, client IP) pair: guessing slows down.

A pair may fail a few times freely; after that it waits before its next
attempt, twice as long after each further failure, up to MAX_WAIT. Nothing
locks: another client, or the same client once the wait is over, may log in,
and a client that has not failed is never refused the right password. A
success clears the pair. Only a hash of the pair is stored, and a pair quiet
for a day starts afresh.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.models import LoginFailure

FREE_FAILURES = 3
MAX_WAIT = timedelta(minutes=15)
FORGET_AFTER = timedelta(days=1)
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _pair(account: str, ip: str) -> str:
    return hashlib.sha256(f"{account.strip().lower()}\0{ip}".encode()).hexdigest()


def _wait_after(failures: int) -> timedelta:
    if failures <= FREE_FAILURES:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (failures - FREE_FAILURES - 1)), MAX_WAIT)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive times; they were stored as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def wait_seconds(session: Session, account: str, ip: str, *, now: datetime) -> float:
    """How long this pair must still wait before its next attempt (0: it may try now)."""
    row = session.execute(
        select(LoginFailure.failures, LoginFailure.last_failed_at).where(
            LoginFailure.pair == _pair(account, ip)
        )
    ).first()
    if row is None:
        return 0.0
    failures, last = row
    since = now - _aware(last)
    if since > FORGET_AFTER:
        return 0.0
    return max(0.0, (_wait_after(failures) - since).total_seconds())


def record_failure(session: Session, account: str, ip: str, *, now: datetime) -> float:
    """Count a failed attempt of the pair; return the wait it now has before the next one."""
    pair = _pair(account, ip)
    row = session.execute(
        select(LoginFailure.failures, LoginFailure.last_failed_at).where(LoginFailure.pair == pair)
    ).first()
    failures = 1 if row is None or now - _aware(row[1]) > FORGET_AFTER else row[0] + 1
    insert = _INSERT[session.get_bind().dialect.name](LoginFailure)
    session.execute(
        insert.values(pair=pair, failures=failures, last_failed_at=now).on_conflict_do_update(
            index_elements=["pair"], set_={"failures": failures, "last_failed_at": now}
        )
    )
    return _wait_after(failures).total_seconds()


def clear(session: Session, account: str, ip: str) -> None:
    """The pair logged in: its failures are forgotten."""
    session.execute(delete(LoginFailure).where(LoginFailure.pair == _pair(account, ip)))
