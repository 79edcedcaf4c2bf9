"""Helpers shared by the command modules: times, errors as sentences, who acts, the audit log."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import NoReturn

import click
from flask import current_app
from sqlalchemy.orm import Session

from mailer import admins, clock, site
from mailer.errors import MailerError


def when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time.") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a time zone offset, such as +01:00 or Z.")
    return moment


def fail(error: MailerError | str) -> NoReturn:
    """Stop with the domain's reason as a sentence; the command changed nothing."""
    text = str(error).strip().rstrip(".")
    raise click.ClickException(f"Nothing was changed: {text}.")


def who() -> str:
    """Who runs the command, for the audit log: `cli:<login name>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def audit(session: Session, action: str, target: str = "", detail: str = "") -> None:
    """Record a command's change in the audit log, as the console records an admin's.

    Called before the command's commit, so the entry and the change land together.
    """
    admins.audit(session, who(), action, target, detail, now=clock.now())


def current_site(session: Session) -> site.SiteSettings:
    """The site settings in force (the console's changes over MAILER_*)."""
    return current_app.extensions[site.KEY].get(session)


def progress_summary(line: str) -> None:
    """The last line after a progress bar, on stderr with it.

    click draws no bar when stderr is not a terminal (a cron job, a CI log),
    so this line is all such a reader sees of how it went.
    """
    click.echo(line, err=True)
