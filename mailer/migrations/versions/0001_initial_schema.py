"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 18:20:14.583025
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('subscriber',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_signup_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriber')),
    sa.UniqueConstraint('email', name=op.f('uq_subscriber_email'))
    )
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_status_created_at', ['status', 'created_at'], unique=False)

    op.create_table('suppression',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression')),
    sa.UniqueConstraint('email', name=op.f('uq_suppression_email'))
    )
    op.create_table('consent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('user_agent', sa.String(length=512), nullable=False),
    sa.Column('form', sa.String(length=40), nullable=False),
    sa.Column('source_url', sa.String(length=2048), nullable=False),
    sa.Column('wording', sa.Text(), nullable=False),
    sa.Column('topics', sa.String(length=100), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_ip', sa.String(length=45), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], name=op.f('fk_consent_subscriber_id_subscriber'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent'))
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('subscriber_topic',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=7), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], name=op.f('fk_subscriber_topic_subscriber_id_subscriber'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'topic', name=op.f('pk_subscriber_topic'))
    )
    with op.batch_alter_table('subscriber_topic', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_topic_topic', ['topic'], unique=False)

    op.create_table('transactional_mail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('consent_id', sa.Integer(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=18), nullable=False),
    sa.Column('status', sa.String(length=6), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['consent_id'], ['consent.id'], name=op.f('fk_transactional_mail_consent_id_consent'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], name=op.f('fk_transactional_mail_subscriber_id_subscriber'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactional_mail'))
    )
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.create_index('ix_transactional_mail_email_created_at', ['email', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactional_mail_subscriber_id'), ['subscriber_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transactional_mail_subscriber_id'))
        batch_op.drop_index('ix_transactional_mail_email_created_at')

    op.drop_table('transactional_mail')
    with op.batch_alter_table('subscriber_topic', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_topic_topic')

    op.drop_table('subscriber_topic')
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_subscriber_id'))

    op.drop_table('consent')
    op.drop_table('suppression')
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_status_created_at')

    op.drop_table('subscriber')
