"""Small helpers the console's page modules share: times in the site's zone, the outbox."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app

from mailer.sending import get_mailroom
from mailer.sending.transport import OutboxTransport
from mailer.settings import Settings


def settings() -> Settings:
    return current_app.extensions["mailer.settings"]


def site_zone() -> ZoneInfo:
    return ZoneInfo(settings().site_time_zone)


def local_time(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """A stored (UTC) time as the site's people read it."""
    if moment is None:
        return ""
    return moment.astimezone(site_zone()).strftime(fmt)


def from_local_input(value: str, zone: ZoneInfo | None = None) -> datetime | None:
    """A browser's datetime-local value ("2026-12-03T17:00"), read in `zone` or the site's.

    Raises ValueError with a message fit for the page.
    """
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value[:40]!r} is not a date and time such as 2026-12-03T17:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or site_zone())
    return moment


def to_local_input(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    """The value a datetime-local input shows for a stored time."""
    if moment is None:
        return ""
    return moment.astimezone(zone or site_zone()).strftime("%Y-%m-%dT%H:%M")


def outbox_directory() -> Path | None:
    """Where mail is written on the embedded default; None when a real relay is used."""
    transport = get_mailroom().transport
    return transport.directory if isinstance(transport, OutboxTransport) else None


def failing_webhooks() -> list:
    """Webhook endpoints switched off after a day of failures: every console page says so."""
    from mailer import db
    from mailer.outbound_webhooks.endpoints import failing_endpoints

    return failing_endpoints(db.get_session())
