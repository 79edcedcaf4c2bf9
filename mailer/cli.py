"""The `mailer` command: database migrations and housekeeping, with the app's settings."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import current_app
from flask.cli import FlaskGroup

from mailer import clock, create_app, db, subscriptions

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration, built in code: no alembic.ini to keep in step."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at `database_url` to `revision`."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False)
def main() -> None:
    """mailer: newsletter and notice service."""


@main.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    upgrade(current_app.extensions["mailer.settings"].database_url, revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    command.downgrade(
        alembic_config(current_app.extensions["mailer.settings"].database_url), revision
    )
    click.echo(f"database at {revision}")


@main.command("purge")
def purge() -> None:
    """Delete unconfirmed signups past their 7 days now (beat does this hourly)."""
    session = db.get_session()
    count = subscriptions.purge_unconfirmed(session, now=clock.now())
    session.commit()
    click.echo(f"purged {count} unconfirmed signups")


if __name__ == "__main__":
    main()
