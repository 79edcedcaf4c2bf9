"""Site settings an admin changes at run time: name, home, postal address, look, defaults, sender.

The MAILER_* environment gives the defaults (and keeps what must not change
while running: secrets, server URLs, the base URL). An admin's changes live
in the one `site_settings` row; a field left empty there falls back to the
environment. Mail is composed with the values in force when it is sent, so
every process reads them through a SiteCache: one primary-key read of the
row's version per use, and the whole row again only after a save.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from email.headerregistry import Address
from email.utils import formataddr, parseaddr
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.errors import InvalidSiteSettings, SiteNotReady
from mailer.models import SiteSetting, Topic
from mailer.settings import Settings

ROW_ID = 1
KEY = "mailer.site"  # the app's SiteCache, in app.extensions
FIELDS = (
    "site_name",
    "home_url",
    "postal_address",
    "logo_url",
    "brand_colour",
    "default_topics",
    "default_frequency",
    "from_name",
    "from_address",
)
TOPICS = tuple(topic.value for topic in Topic)
SETTINGS_PAGE = "/admin/settings"
POSTAL_ADDRESS_MISSING = (
    "no postal address is set, and the law (CAN-SPAM) requires one in every mail: "
    f"an admin sets it on the console's Site settings page ({SETTINGS_PAGE}), "
    "or in MAILER_POSTAL_ADDRESS"
)
MIN_CONTRAST = 4.5  # WCAG AA for normal text: white on the brand colour


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """The values in force: the database's where set, else the environment's."""

    site_name: str
    home_url: str
    postal_address: str
    logo_url: str
    brand_colour: str
    default_topics: tuple[str, ...]
    default_frequency: str
    from_name: str
    from_address: str
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str = ""
    setup_done: bool = False
    overridden: frozenset[str] = frozenset()  # fields the database sets

    @property
    def sender(self) -> Address:
        return Address(display_name=self.from_name, addr_spec=self.from_address)

    @property
    def sender_text(self) -> str:
        return formataddr((self.from_name, self.from_address))

    @property
    def ready(self) -> bool:
        """Whether mail may go out: a postal address is in every mail (CAN-SPAM)."""
        return bool(self.postal_address.strip())

    @property
    def brand_dark(self) -> str:
        """The brand colour a fifth darker: hover states and headings."""
        return darker(self.brand_colour)

    def mail_context(self) -> dict[str, object]:
        """What mail templates read of the site."""
        return {
            "site_name": self.site_name,
            "postal_address": self.postal_address,
            "home_url": self.home_url,
            "logo_url": self.logo_url,
            "brand_colour": self.brand_colour,
        }


def defaults(settings: Settings) -> SiteSettings:
    """The environment's values: what a fresh install, or a cleared field, uses."""
    name, address = parseaddr(settings.sender)
    return SiteSettings(
        site_name=settings.site_name,
        home_url=settings.home_url,
        postal_address=settings.postal_address,
        logo_url=settings.logo_url,
        brand_colour=settings.brand_colour,
        default_topics=tuple(settings.default_topics.split(",")),
        default_frequency=settings.default_frequency,
        from_name=name,
        from_address=address,
    )


def load(session: Session, settings: Settings) -> SiteSettings:
    """The values in force now, read from the database."""
    base = defaults(settings)
    row = session.get(SiteSetting, ROW_ID)
    if row is None:
        return base
    values: dict[str, object] = {}
    for field in FIELDS:
        stored = getattr(row, field)
        if stored is not None:
            values[field] = tuple(stored.split(",")) if field == "default_topics" else stored
    return replace(
        base,
        **values,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        setup_done=row.setup_done_at is not None,
        overridden=frozenset(values),
    )


class SiteCache:
    """A process's copy of the site settings, reloaded only when the row's version moved."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._current: SiteSettings | None = None

    def get(self, session: Session) -> SiteSettings:
        version = session.scalar(select(SiteSetting.version).where(SiteSetting.id == ROW_ID))
        current = self._current
        if current is None or current.version != (version or 0):
            current = load(session, self.settings)
            with self._lock:
                self._current = current
        return current


def require_ready(site: SiteSettings) -> None:
    """Raise SiteNotReady, saying where to fix it, while mail may not go out."""
    if not site.ready:
        raise SiteNotReady(POSTAL_ADDRESS_MISSING)


# --- checking and saving an admin's changes ------------------------------------------


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def darker(colour: str, factor: float = 0.8) -> str:
    """`colour` (#rrggbb) with each channel scaled by `factor`."""
    return "#" + "".join(f"{round(value * factor):02x}" for value in _rgb(colour))


def _luminance(colour: str) -> float:
    def channel(value: int) -> float:
        scaled = value / 255
        return scaled / 12.92 if scaled <= 0.04045 else ((scaled + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(value) for value in _rgb(colour))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    """The WCAG 2 contrast ratio of two #rrggbb colours (1 to 21)."""
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def contrast_with_white(colour: str) -> float:
    """The contrast of white text on `colour`."""
    return contrast("#ffffff", colour)


def _plain(field: str, value: str, limit: int) -> str:
    value = " ".join(value.split())
    if len(value) > limit:
        raise InvalidSiteSettings(field, f"at most {limit} characters, please")
    if any(unicodedata.category(char) in {"Cc", "Cf"} for char in value):
        raise InvalidSiteSettings(field, "control characters are not allowed")
    return value


def _url(field: str, value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if value and (parts.scheme not in {"http", "https"} or not parts.netloc or " " in value):
        raise InvalidSiteSettings(
            field, "must be a full http(s) address such as https://example.com"
        )
    if len(value) > 2048:
        raise InvalidSiteSettings(field, "at most 2048 characters, please")
    return value


def _check(field: str, raw: str, env: SiteSettings) -> str:
    """One field's value as stored ("" = back to the environment's); InvalidSiteSettings."""
    if field in ("home_url", "logo_url"):
        return _url(field, raw)
    if field == "postal_address":
        # One line in every footer: a multi-line address is joined with commas.
        lines = [" ".join(line.split()) for line in raw.splitlines() if line.strip()]
        return _plain(field, ", ".join(lines), 500)
    if field == "brand_colour":
        value = raw.strip().lower()
        if value and not re.fullmatch(r"#[0-9a-f]{6}", value):
            raise InvalidSiteSettings(field, "must be a colour such as #1d6f8c")
        if value and (ratio := contrast_with_white(value)) < MIN_CONTRAST:
            raise InvalidSiteSettings(
                field,
                f"white text on {value} has a contrast of {ratio:.1f}:1; "
                f"pick a darker colour (at least {MIN_CONTRAST}:1 is needed to read it)",
            )
        return value
    if field == "default_topics":
        chosen = [topic for topic in TOPICS if topic in raw.split(",")]
        if not chosen:
            raise InvalidSiteSettings(field, "tick at least one topic")
        return ",".join(chosen)
    if field == "default_frequency":
        if raw not in ("published", "weekly"):
            raise InvalidSiteSettings(field, "must be published or weekly")
        return raw
    if field == "from_address":
        value = raw.strip().lower()
        domain = env.from_address.rpartition("@")[2].lower()
        if value and (
            not re.fullmatch(r"[a-z0-9._+-]{1,64}@[a-z0-9.-]+", value)
            or value.rpartition("@")[2] != domain
        ):
            raise InvalidSiteSettings(
                field,
                f"must be an address at {domain}, the domain mail is signed and bounces return "
                "to (MAILER_FROM sets the domain)",
            )
        return value
    limit = 100
    value = _plain(field, raw, limit)
    if field == "site_name" and not value:
        raise InvalidSiteSettings(field, "the site needs a name")
    return value


def save(
    session: Session, settings: Settings, values: Mapping[str, str], *, by: str, now: datetime
) -> list[str]:
    """Check and store `values` (field -> text; "" = the environment's); return what changed.

    Every field is checked before anything is written, so a bad one changes
    nothing. The caller writes the audit entry and commits.
    """
    env = defaults(settings)
    checked = {field: _check(field, values[field], env) for field in FIELDS if field in values}
    row = session.get(SiteSetting, ROW_ID, with_for_update=True)
    if row is None:
        row = SiteSetting(id=ROW_ID, version=0, updated_by="")
        session.add(row)
    changed = []
    for field, value in checked.items():
        stored = value or None
        if value == _env_text(env, field):
            stored = None  # the same as the default: follow the environment from now on
        if getattr(row, field) != stored:
            setattr(row, field, stored)
            changed.append(field)
    if changed:
        row.version = (row.version or 0) + 1
        row.updated_at, row.updated_by = now, by
    session.flush()
    return changed


def finish_setup(session: Session, *, now: datetime) -> None:
    """Record that the first start's questions were answered."""
    row = session.get(SiteSetting, ROW_ID, with_for_update=True)
    if row is None:
        row = SiteSetting(id=ROW_ID, version=0, updated_by="")
        session.add(row)
    if row.setup_done_at is None:
        row.setup_done_at = now
        row.version = (row.version or 0) + 1
    session.flush()


def _env_text(env: SiteSettings, field: str) -> str:
    value = getattr(env, field)
    return ",".join(value) if isinstance(value, tuple) else str(value)
