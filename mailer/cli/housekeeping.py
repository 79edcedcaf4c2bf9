"""`mailer db upgrade|downgrade` and `mailer purge`."""

from __future__ import annotations

import click
from alembic import command
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from mailer import clock, db, subscriptions, suppression
from mailer.cli import alembic_config, upgrade


@click.group("db", cls=AppGroup)
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = current_app.extensions["mailer.settings"]
    upgrade(settings.database_url, revision, suppression.keys_for(settings)[0])
    click.echo(f"The database is at revision {revision}.")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    command.downgrade(
        alembic_config(current_app.extensions["mailer.settings"].database_url), revision
    )
    click.echo(f"The database is at revision {revision}.")


@click.command("purge")
@with_appcontext
def purge() -> None:
    """Delete unconfirmed signups past their 7 days now (beat does this hourly)."""
    session = db.get_session()
    count = subscriptions.purge_unconfirmed(session, now=clock.now())
    session.commit()
    click.echo(f"Deleted {count} signups left unconfirmed for over 7 days.")
