"""Helpers shared by the command modules."""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

import click

from mailer import timestamps
from mailer.errors import MailerError


def when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return timestamps.parse_iso(value)
    except timestamps.NaiveDatetime:
        raise click.BadParameter(f"{value!r} needs a time zone offset, e.g. +01:00 or Z") from None
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None


def fail(error: MailerError) -> NoReturn:
    raise click.ClickException(str(error))
