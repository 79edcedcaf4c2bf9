"""security: row-bound link tokens, keyed suppression hashes, console sessions and 2FA, feeds

Revision ID: 0010
Revises: 0011
Create Date: 2026-11-26

The suppression list's bare SHA-256 hashes become HMACs of that hash under
the suppression key (mailer.suppression.keyed_hash), so the rows of erased
addresses, whose address is gone, are keyed too. The key comes from
`mailer db upgrade` (alembic attribute "mailer.suppression_key"); a
database with suppression rows refuses to migrate without it.
"""

import hashlib
import hmac
import json
import re

import sqlalchemy as sa
from alembic import context, op

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
ADDRESS = re.compile(r"[^\s@<>]+@([^\s@<>:]+)")


def _suppression_key() -> str | None:
    return context.config.attributes.get("mailer.suppression_key")


def _rehash_suppression(connection) -> None:
    table = sa.table("suppression", sa.column("id", sa.Integer), sa.column("email_hash", sa.String))
    rows = connection.execute(sa.select(table.c.id, table.c.email_hash)).all()
    if not rows:
        return
    key = _suppression_key()
    if not key:
        raise RuntimeError(
            "migration 0010 keys the suppression list's hashes: run it with `mailer db upgrade`, "
            "which knows MAILER_SECRET_KEY (or MAILER_SUPPRESSION_KEY)"
        )
    for row_id, old in rows:
        new = hmac.new(key.encode(), old.encode(), hashlib.sha256).hexdigest()
        connection.execute(table.update().where(table.c.id == row_id).values(email_hash=new))


def _scrub_audit(connection) -> None:
    """Audit entries name ids, never addresses: older export searches and test mails did."""
    table = sa.table(
        "audit_entry",
        sa.column("id", sa.Integer),
        sa.column("action", sa.String),
        sa.column("detail", sa.Text),
    )
    rows = connection.execute(
        sa.select(table.c.id, table.c.action, table.c.detail).where(
            table.c.action.in_(["subscribers.export", "campaign.test"])
        )
    ).all()
    for row_id, action, detail in rows:
        if action == "subscribers.export":
            try:
                values = json.loads(detail or "{}")
            except ValueError:
                values = {}
            if values.get("q"):
                values["q"] = "(a search)"
            new = json.dumps(values)
        else:
            new = ADDRESS.sub(lambda m: f"…@{m.group(1)}", detail or "")
        connection.execute(table.update().where(table.c.id == row_id).values(detail=new))


def upgrade() -> None:
    # Only add_column and create_table: SQLite does these in place, without
    # copying tables that others reference with ON DELETE CASCADE. Rows from
    # before get an empty token key: the links already in mailboxes keep
    # working, and every row made from now on gets a random one.
    for table in ("subscriber", "consent"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("token_key", sa.String(32), nullable=False, server_default="")
            )
    with op.batch_alter_table("notice") as batch:
        batch.add_column(
            sa.Column("held_for_review", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("feed") as batch:
        batch.add_column(sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("review", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("admin_user") as batch:
        batch.add_column(sa.Column("totp_secret", sa.Text(), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", TZ, nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
    op.create_table(
        "admin_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admin_user.id"], ondelete="CASCADE",
            name="fk_admin_session_admin_id_admin_user",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_admin_session"),
        sa.UniqueConstraint("token_hash", name="uq_admin_session_token_hash"),
    )
    op.create_index("ix_admin_session_admin_id", "admin_session", ["admin_id"])
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(200), nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admin_user.id"], ondelete="CASCADE",
            name="fk_recovery_code_admin_id_admin_user",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_code"),
    )
    op.create_index("ix_recovery_code_admin_id", "recovery_code", ["admin_id"])
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failure"),
        sa.UniqueConstraint("pair", name="uq_login_failure_pair"),
    )
    connection = op.get_bind()
    _rehash_suppression(connection)
    _scrub_audit(connection)


def downgrade() -> None:
    # The keyed hashes cannot be turned back: rows whose address is known get
    # their SHA-256 again; an erased address's row stays, matching nothing.
    connection = op.get_bind()
    table = sa.table(
        "suppression",
        sa.column("id", sa.Integer),
        sa.column("email", sa.String),
        sa.column("email_hash", sa.String),
    )
    for row_id, email in connection.execute(
        sa.select(table.c.id, table.c.email).where(table.c.email.is_not(None))
    ).all():
        connection.execute(
            table.update()
            .where(table.c.id == row_id)
            .values(email_hash=hashlib.sha256(email.encode()).hexdigest())
        )
    # Plain DROP COLUMN (SQLite 3.35+), not batch mode: copying a table on
    # SQLite would fire the ON DELETE CASCADE of the tables that reference it.
    op.drop_table("login_failure")
    op.drop_index("ix_recovery_code_admin_id", table_name="recovery_code")
    op.drop_table("recovery_code")
    op.drop_index("ix_admin_session_admin_id", table_name="admin_session")
    op.drop_table("admin_session")
    for column in ("totp_last_step", "totp_enabled_at", "totp_secret"):
        op.drop_column("admin_user", column)
    op.drop_column("feed", "review")
    op.drop_column("feed", "enabled")
    op.drop_column("notice", "held_for_review")
    op.drop_column("consent", "token_key")
    op.drop_column("subscriber", "token_key")
