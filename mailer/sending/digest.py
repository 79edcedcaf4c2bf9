"""Rendering a campaign's digest for each subscriber, fast.

Most of a digest is the same for everyone who chose the same topics in the
same time zone; only the greeting and the personal links differ. So each
(topics, time zone) variant is rendered and CSS-inlined once per worker, with
placeholders that are filled per recipient by plain string replacement.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formataddr
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from mailer.models import Campaign, Notice
from mailer.sending.compose import Attachment, Composer
from mailer.sending.transport import Outgoing
from mailer.site import SiteSettings

GREETING, PREFERENCES = "@@mailer-greeting@@", "@@mailer-preferences@@"
UNSUBSCRIBE = "@@mailer-unsubscribe@@"
KIND_LABELS = {"article": "New article", "video": "New video", "webinar": "Webinar"}
# An intro that greets already ("Hi all,", "Dear readers") gets no "Hello," above it.
GREETS = re.compile(
    r"^\W*(hello|hi|hey|dear|greetings|good (morning|afternoon|evening|day)|welcome)\b",
    re.IGNORECASE,
)


def greets(intro: str) -> bool:
    """Whether the campaign's introduction opens with a greeting of its own."""
    return bool(GREETS.match(intro))


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the renderer needs of a subscriber: nothing more is loaded per message."""

    email: str
    name: str
    topics: tuple[str, ...]
    time_zone: str
    preferences_url: str
    unsubscribe_url: str  # one-click (RFC 8058), also the footer link
    unsubscribe_mailto: str
    # Automatic sends choose each reader's notices when planning; () = the campaign's.
    notice_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Variant:
    text: str
    html: str
    attachments: tuple[Attachment, ...]


def _when(notice: Notice, zone: ZoneInfo) -> str:
    if notice.starts_at is None:  # only webinars get here, and a webinar has its start
        return ""
    local = notice.starts_at.astimezone(zone)
    return f"{local:%A %d %B %Y, %H:%M} ({local.tzname()}), {notice.duration_minutes} minutes"


def invitation(notice: Notice, *, domain: str, now: datetime) -> Attachment:
    """An iCalendar invitation (RFC 5545) to a webinar."""
    calendar = Calendar()
    calendar.add("prodid", "-//mailer//notices//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"notice-{notice.id}@{domain}")
    event.add("dtstamp", now)
    event.add("dtstart", notice.starts_at)
    event.add("duration", timedelta(minutes=notice.duration_minutes or 60))
    event.add("summary", notice.title)
    event.add("url", notice.join_url or notice.url)
    event.add("description", f"{notice.summary}\n\nJoin: {notice.join_url or notice.url}".strip())
    calendar.add_component(event)
    return Attachment(calendar.to_ical(), "text", "calendar", f"webinar-{notice.id}.ics")


class DigestRenderer:
    """Builds one campaign's message for any recipient."""

    def __init__(
        self,
        composer: Composer,
        campaign: Campaign,
        notices: Sequence[Notice],
        *,
        site_time_zone: str = "UTC",
        site: SiteSettings | None = None,
        view_url: str = "",
    ) -> None:
        self.composer = composer
        # The site settings in force when the renderer was made (name, postal
        # address, look, sender); without them, MAILER_*'s.
        self.site = site
        self.view_url = view_url  # "view in your browser": one page per campaign
        self.campaign_id = campaign.id
        self.subject = campaign.subject
        self.intro = campaign.intro
        self.campaign_topics = set(campaign.topic_list)
        self.notices = list(notices)
        self.site_zone = site_time_zone
        self._variants: dict[tuple[tuple[str, ...], str, tuple[int, ...]], _Variant | None] = {}
        site_name = site.site_name if site else str(composer.defaults.get("site_name", ""))
        # One list for everything the site sends: unsubscribing leaves all of it.
        self.list_id = formataddr((site_name, f"notices.{composer.sender_domain}"))

    def _variant(
        self, topics: tuple[str, ...], zone_name: str, notice_ids: tuple[int, ...] = ()
    ) -> _Variant | None:
        key = (topics, zone_name, notice_ids)
        if key not in self._variants:
            self._variants[key] = self._render(topics, zone_name, notice_ids)
        return self._variants[key]

    def _render(
        self, topics: tuple[str, ...], zone_name: str, notice_ids: tuple[int, ...] = ()
    ) -> _Variant | None:
        wanted = set(topics) & self.campaign_topics
        chosen = [
            notice
            for notice in self.notices
            if notice.kind in wanted and (not notice_ids or notice.id in notice_ids)
        ]
        if not chosen:
            return None  # nobody gets an empty digest
        try:
            zone = ZoneInfo(zone_name or self.site_zone)
        except (KeyError, ValueError):
            zone = ZoneInfo(self.site_zone)
        items = [
            {
                "kind": notice.kind,
                "kind_label": KIND_LABELS[notice.kind],
                "title": notice.title,
                "url": notice.url,
                "summary": notice.summary,
                "image_url": notice.image_url,
                "image_alt": notice.image_alt or notice.title,
                "join_url": notice.join_url,
                "when": _when(notice, zone) if notice.kind == "webinar" else "",
            }
            for notice in chosen
        ]
        text, html_part = self.composer.render(
            "digest",
            {
                **(self.site.mail_context() if self.site else {}),
                "view_url": self.view_url,
                "greeting": "" if greets(self.intro) else GREETING,
                "intro": self.intro,
                "notices": items,
                "topics": [topic for topic in ("article", "video", "webinar") if topic in wanted],
                "preferences_url": PREFERENCES,
                "unsubscribe_url": UNSUBSCRIBE,
                "preheader": chosen[0].title,
            },
        )
        now = datetime.now(ZoneInfo("UTC"))
        attachments = tuple(
            invitation(notice, domain=self.composer.sender_domain, now=now)
            for notice in chosen
            if notice.kind == "webinar" and notice.starts_at
        )
        return _Variant(text, html_part, attachments)

    def build(
        self, recipient: Recipient, *, now: datetime, return_path: str | None = None
    ) -> Outgoing | None:
        """The recipient's message, or None when no notice matches their topics.

        List mail carries the RFC 2369/8058 headers: List-Unsubscribe (the
        https URL, then mailto), List-Unsubscribe-Post, List-Id, List-Post: NO.
        """
        variant = self._variant(recipient.topics, recipient.time_zone, recipient.notice_ids)
        if variant is None:
            return None
        greeting = f"Hello {recipient.name}," if recipient.name else "Hello,"
        personal = {PREFERENCES: recipient.preferences_url, UNSUBSCRIBE: recipient.unsubscribe_url}
        text, html_part = (
            variant.text.replace(GREETING, greeting),
            variant.html.replace(GREETING, html.escape(greeting)),
        )
        for placeholder, url in personal.items():  # signed URLs: URL-safe, nothing to escape
            text, html_part = text.replace(placeholder, url), html_part.replace(placeholder, url)
        return self.composer.assemble(
            to=recipient.email,
            subject=self.subject,
            text=text,
            html=html_part,
            now=now,
            attachments=variant.attachments,
            sender=self.site.sender if self.site else None,
            headers={
                "List-Unsubscribe": f"<{recipient.unsubscribe_url}>, "
                f"<{recipient.unsubscribe_mailto}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "List-Id": self.list_id,
                "List-Post": "NO",  # announce-only (RFC 2369 §3.4)
            },
            return_path=return_path,
        )


def sample(renderer: DigestRenderer, *, to: str, base_url: str, now: datetime) -> Outgoing | None:
    """The campaign as a subscriber of all its topics would get it: for previews and tests.

    Its links lead to a "preview only" page: a test mail must not unsubscribe anyone.
    """
    recipient = Recipient(
        email=to,
        name="",
        topics=tuple(sorted(renderer.campaign_topics)),
        time_zone="",
        preferences_url=f"{base_url}/preferences/preview-only",
        unsubscribe_url=f"{base_url}/u/preview-only",
        unsubscribe_mailto=f"mailto:{renderer.composer.sender.addr_spec}?subject=preview-only",
    )
    outgoing = renderer.build(recipient, now=now)
    if outgoing is not None:
        outgoing.message.replace_header("Subject", f"[Test] {renderer.subject}")
    return outgoing


def web_view(renderer: DigestRenderer, *, base_url: str) -> str | None:
    """The campaign's HTML for its "view in your browser" page: no personal data on it.

    It reads as a subscriber of all the campaign's topics in the site's time
    zone gets it, greeted by no name; its footer's links lead to the page
    where a reader asks for their own preferences link, never to anyone's.
    """
    variant = renderer._variant(tuple(sorted(renderer.campaign_topics)), "")
    if variant is None:
        return None
    page = variant.html.replace(GREETING, "Hello,")
    for placeholder in (PREFERENCES, UNSUBSCRIBE):
        page = page.replace(placeholder, f"{base_url}/preferences")
    return page
