"""partial index of the deliveries still to send

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('queued', 'claimed')")


def upgrade() -> None:
    op.create_index("ix_delivery_open", "delivery", ["campaign_id", "id"],
                    postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index("ix_delivery_open", table_name="delivery")
