"""Notices of new articles, videos and webinars: one way in for the admin, CLI, API and feeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.errors import InvalidNotice
from mailer.models import CampaignNotice, Notice, NoticeKind


@dataclass(frozen=True, slots=True)
class NoticeDraft:
    """What a notice is made of, before it is checked and stored."""

    kind: str
    title: str
    url: str
    summary: str = ""
    image_url: str = ""
    image_alt: str = ""  # what the image shows; empty: the title stands in
    published_at: datetime | None = None
    starts_at: datetime | None = None
    duration_minutes: int | None = None
    time_zone: str = ""
    join_url: str = ""
    guid: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _http_url(name: str, value: str, *, required: bool) -> str:
    value = value.strip()
    if not value and not required:
        return ""
    parts = urlsplit(value)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.netloc
        or any(char in value for char in "\r\n\t ")
    ):
        raise InvalidNotice(f"{name} must be an http(s) URL, not {value[:80]!r}")
    return value


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidNotice(f"{name} needs a time zone offset, e.g. 2026-12-01T17:00:00+01:00")
    return value


def check(draft: NoticeDraft) -> NoticeDraft:
    """Return the draft with its fields checked; raise InvalidNotice naming the first bad one."""
    if draft.kind not in set(NoticeKind):
        raise InvalidNotice(f"kind must be article, video or webinar, not {draft.kind!r}")
    title = " ".join(draft.title.split())
    if not title:
        raise InvalidNotice("title is required")
    if len(title) > 300:
        raise InvalidNotice("title must be at most 300 characters")
    _aware("published_at", draft.published_at)
    _aware("starts_at", draft.starts_at)
    if draft.kind == NoticeKind.WEBINAR:
        if draft.starts_at is None:
            raise InvalidNotice("a webinar needs starts_at")
        if not draft.duration_minutes or not 0 < draft.duration_minutes <= 24 * 60:
            raise InvalidNotice("a webinar needs duration_minutes between 1 and 1440")
    if draft.time_zone:
        try:
            ZoneInfo(draft.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidNotice(f"time_zone {draft.time_zone!r} is not an IANA zone") from None
    return NoticeDraft(
        kind=draft.kind,
        title=title,
        url=_http_url("url", draft.url, required=True),
        summary=draft.summary.strip()[:5000],
        image_url=_http_url("image_url", draft.image_url, required=False),
        image_alt=" ".join(draft.image_alt.split())[:300],
        published_at=draft.published_at,
        starts_at=draft.starts_at,
        duration_minutes=draft.duration_minutes,
        time_zone=draft.time_zone,
        join_url=_http_url("join_url", draft.join_url, required=False),
        guid=draft.guid,
    )


def create_notice(
    session: Session, draft: NoticeDraft, *, source: str, now: datetime, held: bool = False
) -> int:
    """Check and store a notice; return its id. Raises InvalidNotice.

    A `held` notice (from a plain-http feed, or one marked "review") goes into
    no automatic send until someone approves it.
    """
    draft = check(draft)
    notice = Notice(
        kind=draft.kind,
        title=draft.title,
        url=draft.url,
        summary=draft.summary,
        image_url=draft.image_url,
        image_alt=draft.image_alt,
        published_at=draft.published_at or now,
        starts_at=draft.starts_at,
        duration_minutes=draft.duration_minutes,
        time_zone=draft.time_zone,
        join_url=draft.join_url,
        source=source,
        guid=draft.guid,
        created_at=now,
        held_for_review=held,
    )
    session.add(notice)
    session.flush()
    return notice.id


def approve_notice(session: Session, notice_id: int, *, now: datetime) -> bool:
    """Release a held notice to automatic sends; False when it was not held.

    It counts as received now: automatic sends take notices by when they
    arrived, and the windows it arrived in may have closed meanwhile.
    """
    notice = session.get(Notice, notice_id, with_for_update=True)
    if notice is None:
        raise InvalidNotice(f"no notice with id {notice_id}")
    if not notice.held_for_review:
        return False
    notice.held_for_review, notice.created_at = False, now
    session.flush()
    return True


def known_guids(session: Session, guids: list[str]) -> set[str]:
    """Which of these feed entry ids are imported already."""
    if not guids:
        return set()
    return set(session.scalars(select(Notice.guid).where(Notice.guid.in_(guids))))


def update_notice(session: Session, notice_id: int, draft: NoticeDraft) -> None:
    """Check and store new values for a notice (from the admin console). Raises InvalidNotice.

    Campaigns already sent keep their mails as they were; a campaign still to
    send uses the notice as it is when it starts.
    """
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise InvalidNotice(f"no notice with id {notice_id}")
    draft = check(draft)
    notice.kind, notice.title, notice.url = draft.kind, draft.title, draft.url
    notice.summary, notice.image_url = draft.summary, draft.image_url
    notice.image_alt = draft.image_alt
    notice.published_at = draft.published_at or notice.published_at
    notice.starts_at, notice.duration_minutes = draft.starts_at, draft.duration_minutes
    notice.time_zone, notice.join_url = draft.time_zone, draft.join_url
    session.flush()


def delete_notice(session: Session, notice_id: int) -> None:
    """Delete a notice no campaign uses; one in a campaign stays, so its report stays whole."""
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise InvalidNotice(f"no notice with id {notice_id}")
    used_by = session.scalars(
        select(CampaignNotice.campaign_id)
        .where(CampaignNotice.notice_id == notice_id)
        .order_by(CampaignNotice.campaign_id)
    ).all()
    if used_by:
        campaigns = ", ".join(str(campaign_id) for campaign_id in used_by)
        raise InvalidNotice(f"notice {notice_id} is part of campaign {campaigns}: it cannot go")
    session.delete(notice)
    session.flush()
