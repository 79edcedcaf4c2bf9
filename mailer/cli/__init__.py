"""The `mailer` command: a Flask CLI group with the app's settings; one module per subject."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask.cli import FlaskGroup

from mailer import create_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str, suppression_key: str | None = None) -> Config:
    """Alembic's configuration, built in code: no alembic.ini to keep in step.

    `suppression_key` is for migration 0010, which keys the suppression list's hashes.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["mailer.suppression_key"] = suppression_key
    return config


def upgrade(database_url: str, revision: str = "head", suppression_key: str | None = None) -> None:
    """Migrate the database at `database_url` to `revision`."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url, suppression_key), revision)


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False)
def main() -> None:
    """mailer: newsletter and notice service."""


def _register() -> None:
    # Imported here: the command modules import alembic_config/upgrade from this one.
    from mailer.cli import admin, auto, bounces, campaigns, dkim, housekeeping, notices, privacy

    for group in (
        housekeeping.db_group,
        housekeeping.purge,
        notices.notice_group,
        notices.api_token_group,
        notices.feed_group,
        campaigns.campaign_group,
        auto.auto_group,
        bounces.bounces_group,
        dkim.dkim_group,
        admin.admin_group,
    ):
        main.add_command(group)
    from mailer.cli.subscribers import subscribers_group  # list import and export

    subscribers_group.add_command(privacy.subscriber_data)  # one person's data: GDPR
    subscribers_group.add_command(privacy.subscriber_erase)
    main.add_command(subscribers_group)


_register()
