"""Small helpers the console's page modules share: times in the reader's zone, the outbox.

Times show in the signed-in person's own zone: admin.js keeps the browser's
zone in the `console_zone` cookie; until it is there (the very first page),
and for a zone the tz database does not know, the site's zone is used.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app, g, request

from mailer import time_zones, timestamps
from mailer.sending import get_mailroom
from mailer.sending.transport import OutboxTransport
from mailer.settings import Settings


def settings() -> Settings:
    return current_app.extensions["mailer.settings"]


ZONE_COOKIE = "console_zone"


def site_zone() -> ZoneInfo:
    return ZoneInfo(settings().site_time_zone)


def zone_name() -> str:
    """The zone the console shows times in for this person: theirs, else the site's."""
    if "console_zone" not in g:
        g.console_zone = time_zones.canonical(request.cookies.get(ZONE_COOKIE, "")) or (
            settings().site_time_zone
        )
    return g.console_zone


def viewer_zone() -> ZoneInfo:
    return ZoneInfo(zone_name())


def local_time(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """A stored (UTC) time as the signed-in person reads it, in their own zone."""
    if moment is None:
        return ""
    return moment.astimezone(viewer_zone()).strftime(fmt)


def form_zone(field: str = "zone") -> ZoneInfo:
    """The zone a form's date and time were typed in (admin.js sends the browser's)."""
    return ZoneInfo(time_zones.canonical(request.form.get(field, "")) or zone_name())


def from_local_input(value: str, zone: ZoneInfo | None = None) -> datetime | None:
    """A browser's datetime-local value ("2026-12-03T17:00") in `zone` or the viewer's, as UTC.

    Raises ValueError with a message fit for the page.
    """
    value = value.strip()
    if not value:
        return None
    try:
        return timestamps.parse_iso(value, zone=zone or viewer_zone())
    except ValueError:
        raise ValueError(
            f"{value[:40]!r} is not a date and time such as 2026-12-03T17:00"
        ) from None


def to_local_input(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    """The value a datetime-local input shows for a stored time."""
    if moment is None:
        return ""
    return moment.astimezone(zone or viewer_zone()).strftime("%Y-%m-%dT%H:%M")


def outbox_directory() -> Path | None:
    """Where mail is written on the embedded default; None when a real relay is used."""
    transport = get_mailroom().transport
    return transport.directory if isinstance(transport, OutboxTransport) else None


def failing_webhooks() -> list:
    """Webhook endpoints switched off after a day of failures: every console page says so."""
    from mailer import db
    from mailer.outbound_webhooks.endpoints import failing_endpoints

    return failing_endpoints(db.get_session())
