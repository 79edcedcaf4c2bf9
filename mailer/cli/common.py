"""Helpers shared by the command modules."""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

import click
from flask import current_app
from sqlalchemy.orm import Session

from mailer import site
from mailer.errors import MailerError


def when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a time zone offset, e.g. +01:00 or Z")
    return moment


def fail(error: MailerError) -> NoReturn:
    raise click.ClickException(str(error))


def current_site(session: Session) -> site.SiteSettings:
    """The site settings in force (the console's changes over MAILER_*)."""
    return current_app.extensions[site.KEY].get(session)
