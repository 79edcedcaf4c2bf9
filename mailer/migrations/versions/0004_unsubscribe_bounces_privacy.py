"""unsubscribe channel, frequency, soft bounces; suppression by address hash

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("frequency", sa.String(9), nullable=False,
                                   server_default="published"))
        batch.add_column(sa.Column("unsubscribe_channel", sa.String(20), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("unsubscribed_campaign_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("soft_bounces", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.create_foreign_key("fk_subscriber_unsubscribed_campaign_id_campaign", "campaign",
                                 ["unsubscribed_campaign_id"], ["id"], ondelete="SET NULL")
    with op.batch_alter_table("consent") as batch:
        batch.add_column(sa.Column("frequency", sa.String(9), nullable=False,
                                   server_default="published"))
    with op.batch_alter_table("suppression") as batch:
        batch.add_column(sa.Column("email_hash", sa.String(64), nullable=True))
        batch.alter_column("email", existing_type=sa.String(320), nullable=True)
        batch.alter_column("reason", existing_type=sa.String(40), type_=sa.String(12))
    suppression = sa.table("suppression", sa.column("id", sa.Integer),
                           sa.column("email", sa.String), sa.column("email_hash", sa.String))
    connection = op.get_bind()
    for row_id, email in connection.execute(sa.select(suppression.c.id, suppression.c.email)):
        connection.execute(suppression.update().where(suppression.c.id == row_id).values(
            email_hash=hashlib.sha256(email.encode()).hexdigest()))
    with op.batch_alter_table("suppression") as batch:
        batch.alter_column("email_hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_suppression_email_hash", ["email_hash"])


def downgrade() -> None:
    op.execute("DELETE FROM suppression WHERE email IS NULL")
    with op.batch_alter_table("suppression") as batch:
        batch.drop_constraint("uq_suppression_email_hash", type_="unique")
        batch.drop_column("email_hash")
        batch.alter_column("email", existing_type=sa.String(320), nullable=False)
        batch.alter_column("reason", existing_type=sa.String(12), type_=sa.String(40))
    with op.batch_alter_table("consent") as batch:
        batch.drop_column("frequency")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_constraint("fk_subscriber_unsubscribed_campaign_id_campaign",
                              type_="foreignkey")
        batch.drop_column("soft_bounces")
        batch.drop_column("unsubscribed_campaign_id")
        batch.drop_column("unsubscribe_channel")
        batch.drop_column("frequency")
