"""admin accounts and the audit log

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(6), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admin_user"),
        sa.UniqueConstraint("email", name="uq_admin_user_email"),
    )
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["admin_id"], ["admin_user.id"], ondelete="SET NULL",
                                name="fk_audit_entry_admin_id_admin_user"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entry"),
    )
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"])
    # The dashboard counts confirmations per day and unsubscribes per campaign.
    op.create_index("ix_subscriber_confirmed_at", "subscriber", ["confirmed_at"])
    op.create_index("ix_subscriber_unsubscribed_campaign_id", "subscriber",
                    ["unsubscribed_campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_subscriber_unsubscribed_campaign_id", table_name="subscriber")
    op.drop_index("ix_subscriber_confirmed_at", table_name="subscriber")
    op.drop_index("ix_audit_entry_at", table_name="audit_entry")
    op.drop_table("audit_entry")
    op.drop_table("admin_user")
