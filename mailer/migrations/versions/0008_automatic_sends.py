"""automatic sends: campaign kind and slot, per-delivery notices, the pause switch

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

READER_NOTICES = sa.text("notices_until IS NOT NULL")


def upgrade() -> None:
    # Only add_column and create_index: SQLite does these in place, without
    # copying tables that others reference with ON DELETE CASCADE.
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("kind", sa.String(9), nullable=False,
                                   server_default="manual"))
        batch.add_column(sa.Column("slot", sa.String(80), nullable=True))
        batch.create_index("ix_campaign_slot", ["slot"], unique=True)
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("notice_ids", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("notices_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_delivery_reader_notices", "delivery", ["subscriber_id", "notices_until"],
                    postgresql_where=READER_NOTICES, sqlite_where=READER_NOTICES)
    op.create_table(
        "automatic_sending",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_by", sa.String(320), nullable=False),
        sa.Column("notices_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_campaign_ids", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_automatic_sending"),
    )
    # A list that already has notices: announce only those created from now on,
    # or the first digest would carry the whole archive. A new list needs no row.
    op.execute(
        "INSERT INTO automatic_sending (id, paused, changed_by, notices_since, published_until,"
        " held_campaign_ids) SELECT 1, FALSE, 'migration 0008', CURRENT_TIMESTAMP,"
        " CURRENT_TIMESTAMP, '' WHERE EXISTS (SELECT 1 FROM notice)"
    )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not batch mode: copying `campaign` on
    # SQLite would fire its ON DELETE CASCADE into campaign_notice.
    op.drop_table("automatic_sending")
    op.drop_index("ix_delivery_reader_notices", table_name="delivery")
    op.drop_column("delivery", "notices_until")
    op.drop_column("delivery", "notice_ids")
    op.drop_index("ix_campaign_slot", table_name="campaign")
    op.drop_column("campaign", "slot")
    op.drop_column("campaign", "kind")
