"""site settings in the database, image descriptions of notices

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_settings",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(320), nullable=False),
        sa.Column("setup_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("site_name", sa.String(100), nullable=True),
        sa.Column("home_url", sa.String(2048), nullable=True),
        sa.Column("postal_address", sa.String(500), nullable=True),
        sa.Column("logo_url", sa.String(2048), nullable=True),
        sa.Column("brand_colour", sa.String(7), nullable=True),
        sa.Column("default_topics", sa.String(100), nullable=True),
        sa.Column("default_frequency", sa.String(9), nullable=True),
        sa.Column("from_name", sa.String(100), nullable=True),
        sa.Column("from_address", sa.String(320), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_site_settings"),
    )
    # add_column only: SQLite does it in place (no copy of a table others cascade into).
    with op.batch_alter_table("notice") as batch:
        batch.add_column(sa.Column("image_alt", sa.String(300), nullable=False, server_default=""))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not batch mode: copying `notice` would
    # trip the campaign_notice foreign key on SQLite.
    op.drop_column("notice", "image_alt")
    op.drop_table("site_settings")
