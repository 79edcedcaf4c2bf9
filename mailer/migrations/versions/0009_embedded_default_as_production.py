"""the embedded default as production: one form of time, ids never reused, on SQLite

PostgreSQL needs nothing: timestamptz columns, and sequences that never hand
out an id twice. Both parts are for SQLite.

Time. SQLite keeps text, and until now held three forms side by side:
SQLAlchemy's "2026-12-03 17:00:00.000000" (the wall-clock digits of whatever
zone the value had), Python's "2026-12-03 17:00:00+00:00" (raw SQL binds) and
"2026-12-03 17:00:00" (CURRENT_TIMESTAMP in migration 0008). Text compares
and sorts, so these disagreed. Every value becomes UTC in the first form,
which mailer.timestamps now writes and reads as aware UTC.

Webinar times typed into the console on SQLite were stored as their wall
clock: "17:00 in America/New_York" as 17:00. For notices the console made
(source 'admin'), the zone is known (the notice's own, else the site's,
MAILER_SITE_TIME_ZONE), so their start is read back in that zone. A notice
from the CLI, API or a feed that was later edited in the console cannot be
told apart and is left as it is.

Ids. Without AUTOINCREMENT SQLite gives a new row the id of a deleted last
row, so a link, token, VERP address or API id minted for the old row would
name the new one. Every table whose ids reach the outside is rebuilt as
AUTOINCREMENT (data, indexes and constraints kept; foreign keys are off while
migrating, see migrations/env.py, so dropping the old copy cascades nowhere),
its sequence set to the highest id the table or any reference to it holds.

Revision ID: 0009
Revises: 0013
Create Date: 2026-12-02
"""

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0013"
branch_labels = None
depends_on = None

CANONICAL = "%Y-%m-%d %H:%M:%S.%f"
# Already canonical: 26 characters of digits, dashes, colons, one space and a dot.
ODD = "{column} IS NOT NULL AND (length({column}) != 26 OR {column} GLOB '*[^0-9 :.-]*')"


def _utc_text(value: str, zone: ZoneInfo = ZoneInfo("UTC")) -> str:
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC).strftime(CANONICAL)


def _datetime_columns(bind: sa.Connection) -> list[tuple[str, str]]:
    inspector = sa.inspect(bind)
    return [
        (table, column["name"])
        for table in inspector.get_table_names()
        if table != "alembic_version" and not table.startswith("sqlite_")
        for column in inspector.get_columns(table)
        if isinstance(column["type"], sa.DateTime)
    ]


def _normalise(bind: sa.Connection, table: str, column: str) -> None:
    quoted = f'"{column}"'
    odd = bind.exec_driver_sql(
        f'SELECT rowid, {quoted} FROM "{table}" WHERE {ODD.format(column=quoted)}'
    ).all()
    if odd:
        bind.exec_driver_sql(
            f'UPDATE "{table}" SET {quoted} = ? WHERE rowid = ?',
            [(_utc_text(value), rowid) for rowid, value in odd],
        )


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _console_webinars(bind: sa.Connection) -> None:
    site = _zone(os.environ.get("MAILER_SITE_TIME_ZONE", "")) or ZoneInfo("UTC")
    rows = bind.exec_driver_sql(
        "SELECT id, starts_at, time_zone FROM notice"
        " WHERE source = 'admin' AND starts_at IS NOT NULL"
    ).all()
    fixed = [
        (_utc_text(starts_at, _zone(time_zone) or site), notice_id)
        for notice_id, starts_at, time_zone in rows
    ]
    if fixed:
        bind.exec_driver_sql("UPDATE notice SET starts_at = ? WHERE id = ?", fixed)


# Tables whose ids reach the outside (links, tokens, VERP addresses, the API,
# the console's URLs), and the columns that may still name a deleted row's id.
NEVER_REUSED = {
    "subscriber": ["SELECT max(subscriber_id) FROM delivery"],
    "consent": [],
    "transactional_mail": [],
    "suppression": [],
    "notice": [
        # reminder:<notice id> is a unique slot: a reused id would find it taken.
        "SELECT max(CAST(substr(slot, 10) AS INTEGER)) FROM campaign WHERE slot LIKE 'reminder:%'"
    ],
    "campaign": ["SELECT max(campaign_id) FROM delivery"],
    "delivery": [],
    "api_token": [],
    "feed": [],
    "admin_user": [],
    "audit_entry": [],
    "bounce_event": [],
    "webhook_nonce": [],
    "admin_session": [],
    "recovery_code": [],
    "login_failure": [],
}


def _never_reuse_ids(bind: sa.Connection) -> None:
    """Rebuild each table with AUTOINCREMENT, its sequence at the highest id ever seen."""
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        # Dropping the old copy would cascade into every table that references it.
        raise RuntimeError("migration 0009 needs PRAGMA foreign_keys=OFF (see migrations/env.py)")
    for table, references in NEVER_REUSED.items():
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
        highest = max(
            (bind.exec_driver_sql(query).scalar() or 0)
            for query in (f'SELECT max(id) FROM "{table}"', *references)
        )
        bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        if highest:
            bind.exec_driver_sql(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, highest)
            )
    if problems := bind.exec_driver_sql("PRAGMA foreign_key_check").all():
        raise RuntimeError(f"foreign keys broken by the rebuild: {problems[:5]}")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    _console_webinars(bind)  # first: it reads the wall-clock digits as they were stored
    for table, column in _datetime_columns(bind):
        _normalise(bind, table, column)
    _never_reuse_ids(bind)


def downgrade() -> None:
    # The canonical UTC form is what earlier revisions wrote for UTC values and
    # read back as naive UTC, and ids that are never reused harm no earlier
    # code: nothing to undo.
    pass
