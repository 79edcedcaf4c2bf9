"""delivery: cheaper planning (no foreign keys, no (campaign_id, status) index), split queue index

Planning 1,000,000 deliveries took 18.6 s; the two foreign keys' per-row
checks were about 9 s of it and the (campaign_id, status) index about 1 s, an
index no query used while a campaign sends (see bench/README.md). A campaign's
or a subscriber's deliveries are now deleted explicitly, by
campaigns.delete_campaign and privacy.erase_subscriber.

ix_delivery_open (queued or claimed, by id) becomes two partial indexes, one
for each of claim_batch's two queries: queued rows by id, claimed rows by
lease expiry. Each query then has an index that matches it exactly; with one
query on `queued OR expired lease` PostgreSQL sometimes walked the whole
campaign by primary key instead.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('queued', 'claimed')")
QUEUED = sa.text("status = 'queued'")
CLAIMED = sa.text("status = 'claimed'")


def upgrade() -> None:
    op.drop_index("ix_delivery_open", table_name="delivery")
    # On SQLite, batch mode copies the table (and keeps its other indexes).
    with op.batch_alter_table("delivery") as batch:
        batch.drop_constraint("fk_delivery_campaign_id_campaign", type_="foreignkey")
        batch.drop_constraint("fk_delivery_subscriber_id_subscriber", type_="foreignkey")
        batch.drop_index("ix_delivery_campaign_id_status")
    op.create_index("ix_delivery_queued", "delivery", ["campaign_id", "id"],
                    postgresql_where=QUEUED, sqlite_where=QUEUED)
    op.create_index("ix_delivery_claimed", "delivery", ["campaign_id", "lease_until"],
                    postgresql_where=CLAIMED, sqlite_where=CLAIMED)


def downgrade() -> None:
    op.drop_index("ix_delivery_claimed", table_name="delivery")
    op.drop_index("ix_delivery_queued", table_name="delivery")
    # Rows whose campaign or subscriber is gone would fail the foreign keys.
    op.execute("DELETE FROM delivery WHERE campaign_id NOT IN (SELECT id FROM campaign)"
               " OR subscriber_id NOT IN (SELECT id FROM subscriber)")
    with op.batch_alter_table("delivery") as batch:
        batch.create_index("ix_delivery_campaign_id_status", ["campaign_id", "status"])
        batch.create_foreign_key("fk_delivery_campaign_id_campaign", "campaign",
                                 ["campaign_id"], ["id"], ondelete="CASCADE")
        batch.create_foreign_key("fk_delivery_subscriber_id_subscriber", "subscriber",
                                 ["subscriber_id"], ["id"], ondelete="CASCADE")
    op.create_index("ix_delivery_open", "delivery", ["campaign_id", "id"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
