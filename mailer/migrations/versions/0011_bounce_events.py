"""bounces: a ledger of bounce and complaint events, Message-ID look-ups, webhook nonces

bounce_event keeps each bounce or complaint that changed something, for the
console's bounces page and the per-campaign rates. delivery.message_id and
transactional_mail.message_id get partial indexes (rows not yet sent have
no Message-ID): a report without our VERP address is matched only by the
Message-ID it quotes. webhook_nonce remembers the one-time values of
provider webhooks (Mailgun tokens, SNS MessageIds), so a replay is refused.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None

SENT = sa.text("message_id <> ''")


def upgrade() -> None:
    op.create_index("ix_delivery_message_id", "delivery", ["message_id"],
                    postgresql_where=SENT, sqlite_where=SENT)
    op.create_index("ix_transactional_mail_message_id", "transactional_mail", ["message_id"],
                    postgresql_where=SENT, sqlite_where=SENT)
    op.create_table(
        "bounce_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(9), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("mail_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="SET NULL",
                                name="fk_bounce_event_subscriber_id_subscriber"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaign.id"], ondelete="SET NULL",
                                name="fk_bounce_event_campaign_id_campaign"),
        sa.ForeignKeyConstraint(["mail_id"], ["transactional_mail.id"], ondelete="SET NULL",
                                name="fk_bounce_event_mail_id_transactional_mail"),
        sa.PrimaryKeyConstraint("id", name="pk_bounce_event"),
    )
    op.create_index("ix_bounce_event_at", "bounce_event", ["at"])
    op.create_index("ix_bounce_event_email", "bounce_event", ["email"])
    op.create_index("ix_bounce_event_subscriber_id", "bounce_event", ["subscriber_id"])
    op.create_index("ix_bounce_event_campaign_kind", "bounce_event", ["campaign_id", "kind"])
    op.create_table(
        "webhook_nonce",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("value_hash", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_nonce"),
        sa.UniqueConstraint("provider", "value_hash", name="uq_webhook_nonce_provider"),
    )
    op.create_index("ix_webhook_nonce_seen_at", "webhook_nonce", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_nonce_seen_at", table_name="webhook_nonce")
    op.drop_table("webhook_nonce")
    for name in ("ix_bounce_event_campaign_kind", "ix_bounce_event_subscriber_id",
                 "ix_bounce_event_email", "ix_bounce_event_at"):
        op.drop_index(name, table_name="bounce_event")
    op.drop_table("bounce_event")
    op.drop_index("ix_transactional_mail_message_id", table_name="transactional_mail")
    op.drop_index("ix_delivery_message_id", table_name="delivery")
