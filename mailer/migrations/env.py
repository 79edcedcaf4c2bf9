"""Alembic environment: the URL comes from mailer's settings (see mailer.cli.alembic_config)."""

from alembic import context

from mailer.db import make_engine
from mailer.models import Base

config = context.config


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # SQLite alters a table by copying it and dropping the old one; with
                # foreign keys on, that DROP would cascade into the tables that refer
                # to it. Off for the migration (outside any transaction, or it is ignored);
                # a migration that rebuilds tables checks them (PRAGMA foreign_key_check).
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            # render_as_batch: SQLite can only ALTER a table by copying it.
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # also when a migration fails: no connection left open


run_migrations()
