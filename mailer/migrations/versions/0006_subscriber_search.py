"""indexes for the admin console's subscriber search

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

On PostgreSQL, substring search of address and name uses pg_trgm's GIN
indexes. pg_trgm ships with PostgreSQL and is a trusted extension (13+), so
the database's owner may create it without being a superuser. SQLite has no
trigram index: it gets plain indexes of the same names, so that models and
migrations agree on both, and searches by scanning (fine for the embedded
default's list sizes).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TRIGRAM_INDEXES = {"ix_subscriber_email_trgm": "email", "ix_subscriber_name_trgm": "name"}


def _create_trigram_extension() -> None:
    connection = op.get_bind()
    installed = connection.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
    if installed:
        return
    allowed = connection.scalar(
        sa.text("SELECT has_database_privilege(current_database(), 'CREATE')")
    )
    if not allowed:
        raise RuntimeError(
            "migration 0006 needs the pg_trgm extension: run CREATE EXTENSION pg_trgm in this "
            "database as its owner or a superuser, then upgrade again"
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


def upgrade() -> None:
    op.create_index("ix_subscriber_status_id", "subscriber", ["status", "id"])
    if op.get_bind().dialect.name == "postgresql":
        _create_trigram_extension()
        for name, column in TRIGRAM_INDEXES.items():
            op.create_index(
                name,
                "subscriber",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
            # How common a searched text is, the planner guesses from this
            # column's histogram: with 1000 entries instead of 100 a rare text
            # that happens to be in it is not taken for a common one (which
            # would walk the whole table in id order instead of the index).
            op.execute(f"ALTER TABLE subscriber ALTER COLUMN {column} SET STATISTICS 1000")
    else:
        for name, column in TRIGRAM_INDEXES.items():
            op.create_index(name, "subscriber", [column])


def downgrade() -> None:
    # The extension stays: other schemas in the database may use it.
    if op.get_bind().dialect.name == "postgresql":
        for column in TRIGRAM_INDEXES.values():
            op.execute(f"ALTER TABLE subscriber ALTER COLUMN {column} SET STATISTICS -1")
    for name in TRIGRAM_INDEXES:
        op.drop_index(name, table_name="subscriber")
    op.drop_index("ix_subscriber_status_id", table_name="subscriber")
