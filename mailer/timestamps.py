"""The one column type for moments in time: aware UTC in, aware UTC out, on both databases.

PostgreSQL keeps `timestamp with time zone` and hands back the session's zone;
SQLite keeps text and forgets any offset it is given, so an aware 17:00 in
New York used to be stored as 17:00 and read back as naive 17:00. Here every
value is converted to UTC before it is bound, SQLite gets one canonical text
form (so that comparing and sorting the text orders the moments), and every
value read is aware UTC.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, tzinfo

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLAlchemy's own text form on SQLite: what the column holds after migration 0009.
SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class NaiveDatetime(ValueError):
    """A datetime without a zone reached the database: nobody can tell which moment it means."""


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive one is refused rather than guessed at."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetime(f"{moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def sqlite_text(moment: datetime) -> str:
    """The canonical SQLite text of a moment: UTC, no offset, microseconds always."""
    return as_utc(moment).strftime(SQLITE_FORMAT)


class UTCDateTime(TypeDecorator[datetime]):
    """`timestamp with time zone` on PostgreSQL, canonical UTC text on SQLite; always aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            # e.g. `column - timedelta`: SQLite has no interval arithmetic, so
            # none is done in SQL on either database. Compute the moment in Python.
            raise TypeError(f"a timestamp column takes a datetime, not {value!r}")
        # SQLite's DATETIME writes the wall-clock digits and drops the zone: UTC's, then.
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: the text is UTC by construction (and migration 0009)
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)  # PostgreSQL answers in the session's TimeZone


def register_sqlite_adapter() -> None:
    """Make a datetime bound without a column type (raw SQL) take the same text form.

    Python's default adapter writes ISO text with the offset ("...+00:00"),
    which sorts apart from the canonical form and is deprecated from 3.12.
    A naive datetime is refused here too.
    """
    sqlite3.register_adapter(datetime, sqlite_text)


def parse_iso(value: str, *, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 time from outside, as aware UTC: the one place wall-clock input is read.

    A value with an offset keeps its moment; one without is the wall clock in
    `zone`. Raises NaiveDatetime when it has no offset and no zone is given,
    ValueError when it is no ISO 8601 time at all.
    """
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        if zone is None:
            raise NaiveDatetime(f"{value.strip()[:40]!r} needs a time zone offset")
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
