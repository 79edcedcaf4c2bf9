"""Notices from RSS and Atom feeds: a bounded download, feedparser, each entry imported once."""

from __future__ import annotations

import calendar
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, NoResultFound
from sqlalchemy.orm import Session, sessionmaker

from mailer import notices, redact, safe_http
from mailer.errors import InvalidFeed, InvalidNotice
from mailer.models import Feed, NoticeKind

log = logging.getLogger("mailer.feeds")

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
MAX_URL = 2048  # the width of Notice.url, image_url and guid
MAX_TITLE = 300


class FeedUnavailable(Exception):
    """The feed could not be fetched or is no feed; the message is kept in Feed.last_error."""


@dataclass(frozen=True, slots=True)
class Document:
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class PollResult:
    feed_id: int
    url: str
    imported: int = 0
    skipped: int = 0  # entries without a title, with a non-http link, ...
    error: str = ""


def _is_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.netloc) and len(url) <= MAX_URL


def add_feed(session: Session, *, url: str, kind: str, now: datetime, review: bool = False) -> int:
    """Store a feed to poll for notices of `kind`; return its id. Raises InvalidFeed.

    With `review` (always so for a plain-http feed, which anyone on the way can
    rewrite) its notices wait for approval before any automatic send.
    """
    url = url.strip()
    if not _is_http(url) or any(char.isspace() for char in url):
        raise InvalidFeed(f"url must be an http(s) URL, not {url[:80]!r}")
    if kind not in set(NoticeKind):
        raise InvalidFeed(f"kind must be article, video or webinar, not {kind!r}")
    existing = session.scalar(select(Feed.id).where(Feed.url == url))
    if existing is not None:
        raise InvalidFeed(f"{url} is already feed {existing}")
    feed = Feed(url=url, kind=kind, created_at=now, review=review)
    session.add(feed)
    session.flush()
    return feed.id


def fetch(url: str, policy: safe_http.Policy) -> Document:
    """Download a feed under `policy` (no internal addresses, one deadline, a size cap).

    Raises FeedUnavailable with words fit for the console; what exactly went
    wrong (an address, a refused port) goes to the log only.
    """
    try:
        response = safe_http.fetch(url, policy, headers={"Accept": ACCEPT})
    except safe_http.FetchError as error:
        log.warning("feed %s: %s", redact.url(url), error.detail)
        raise FeedUnavailable(error.public) from None
    if response.status >= 400:
        raise FeedUnavailable(f"HTTP {response.status}")
    return Document(response.body, response.headers.get("Content-Type", ""))


def _parse(document: Document) -> Any:
    # No content-location: feedparser would resolve guids against it as well,
    # and an entry's id must not change when the feed moves. _draft resolves links.
    headers = {"content-type": document.content_type} if document.content_type else {}
    # A stream, never bytes: feedparser opens bytes that look like a path as a local file.
    parsed = feedparser.parse(io.BytesIO(document.body), response_headers=headers)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise FeedUnavailable("not an RSS or Atom feed" + (f": {reason}" if reason else ""))
    return parsed


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment, without the contents of scripts and styles."""

    HIDDEN = frozenset({"script", "style"})
    # Tags that end a run of text: "<p>a</p><p>b</p>" reads "a b", while "<b>a</b>." stays "a.".
    # fmt: off
    BREAKS = frozenset({
        "address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "ol", "p",
        "pre", "section", "table", "td", "th", "tr", "ul",
    })
    # fmt: on

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, _attrs: object) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        if tag in self.BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1
        if tag in self.BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _text(entry: Any, key: str) -> str:
    """The entry's `key` as plain text on one line; HTML values lose their tags."""
    value = entry.get(key) or ""
    if entry.get(f"{key}_detail", {}).get("type") in {"text/html", "application/xhtml+xml"}:
        parser = _TextOnly()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
    return " ".join(value.split())


def _published(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)  # feedparser gives UTC
    except (OverflowError, OSError, ValueError):
        return None


def _image(entry: Any, base: str) -> str:
    """The first http(s) image of Media RSS thumbnails, media content or enclosures, or ""."""
    urls = [item.get("url") for item in entry.get("media_thumbnail", [])]
    urls += [
        item.get("url")
        for item in entry.get("media_content", [])
        if item.get("medium") == "image" or item.get("type", "").startswith("image/")
    ]
    urls += [
        item.get("href")
        for item in entry.get("enclosures", [])
        if item.get("type", "").startswith("image/")
    ]
    # A bad image URL costs the notice its picture, not the notice itself.
    return next((urljoin(base, url) for url in urls if url and _is_http(urljoin(base, url))), "")


def _event_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _webinar_times(entry: Any) -> tuple[datetime | None, int | None]:
    # RSS feeds carry no start time of their own; the RSS event module
    # (ev:startdate, ev:enddate) is the common way to add one.
    start, end = _event_time(entry.get("ev_startdate")), _event_time(entry.get("ev_enddate"))
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return start, None
    return start, round((end - start).total_seconds() / 60)


def _draft(entry: Any, kind: str, base: str) -> notices.NoticeDraft:
    """The entry as a notice; `base` (the feed's URL) resolves relative links."""
    link = (entry.get("link") or "").strip()
    if not link:
        raise InvalidNotice("entry has no link")
    link = urljoin(base, link)
    if not _is_http(link):
        raise InvalidNotice(f"link must be an http(s) URL, not {link[:80]!r}")
    guid = (entry.get("id") or "").strip() or link
    if len(guid) > MAX_URL:
        raise InvalidNotice(f"entry id is longer than {MAX_URL} characters")
    title = _text(entry, "title")
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1].rstrip() + "…"
    starts_at, minutes = _webinar_times(entry) if kind == NoticeKind.WEBINAR else (None, None)
    return notices.NoticeDraft(
        kind=kind,
        title=title,
        url=link,
        summary=_text(entry, "summary"),
        image_url=_image(entry, base),
        published_at=_published(entry),
        starts_at=starts_at,
        duration_minutes=minutes,
        guid=guid,
    )


def needs_review(feed: Feed) -> bool:
    """Whether the feed's notices wait for approval: marked so, or fetched without TLS."""
    return feed.review or urlsplit(feed.url).scheme == "http"


def set_feed(
    session: Session, feed_id: int, *, enabled: bool | None = None, review: bool | None = None
) -> Feed:
    """Switch a feed's polling or its review on or off. Raises InvalidFeed."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise InvalidFeed(f"there is no feed {feed_id}")
    if enabled is not None:
        feed.enabled = enabled
    if review is not None:
        feed.review = review
    session.flush()
    return feed


def delete_feed(session: Session, feed_id: int) -> str:
    """Remove a feed (its notices stay); return its URL. Raises InvalidFeed."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise InvalidFeed(f"there is no feed {feed_id}")
    session.delete(feed)
    session.flush()
    return feed.url


def record_failure(session: Session, feed_id: int, error: str, *, now: datetime) -> PollResult:
    """Note on the feed row that this poll failed, and why."""
    feed = session.get_one(Feed, feed_id)
    feed.last_polled_at = now
    feed.last_error = error
    session.flush()
    return PollResult(feed_id, feed.url, error=error)


def import_document(
    session: Session, feed_id: int, document: Document, *, now: datetime
) -> PollResult:
    """Create a notice for each entry not imported before; skip and count invalid entries.

    An entry is known by its id (RSS guid, Atom id), else its link, across all
    feeds: one article in two feeds is announced once.
    """
    feed = session.get_one(Feed, feed_id)
    try:
        parsed = _parse(document)
    except FeedUnavailable as failure:
        return record_failure(session, feed_id, str(failure), now=now)
    drafts: list[notices.NoticeDraft] = []
    skipped = 0
    for entry in reversed(parsed.entries):  # oldest first, so ids follow publication
        try:
            drafts.append(_draft(entry, feed.kind, feed.url))
        except InvalidNotice as problem:
            skipped += 1
            log.info("feed %s: entry skipped: %s", feed_id, problem)
    known = notices.known_guids(session, [draft.guid for draft in drafts if draft.guid])
    imported = 0
    for draft in drafts:
        if draft.guid in known:
            continue
        known.add(draft.guid or "")
        try:
            with session.begin_nested():
                notices.create_notice(
                    session, draft, source="feed", now=now, held=needs_review(feed)
                )
        except IntegrityError:
            continue  # another poll imported it a moment ago
        except (InvalidNotice, DataError) as problem:
            skipped += 1
            log.info("feed %s: entry %r skipped: %s", feed_id, draft.guid, problem)
            continue
        imported += 1
    feed.last_polled_at = now
    feed.last_error = ""
    feed.imported_count += imported
    session.flush()
    return PollResult(feed_id, feed.url, imported=imported, skipped=skipped)


def _store(
    factory: sessionmaker[Session],
    feed_id: int,
    outcome: Document | FeedUnavailable,
    *,
    now: datetime,
) -> PollResult:
    with factory() as session:
        if isinstance(outcome, Document):
            result = import_document(session, feed_id, outcome, now=now)
        else:
            result = record_failure(session, feed_id, str(outcome), now=now)
        session.commit()
    return result


def _poll_one(
    factory: sessionmaker[Session],
    feed_id: int,
    url: str,
    policy: safe_http.Policy,
    clock: Callable[[], datetime],
) -> PollResult:
    outcome: Document | FeedUnavailable
    try:
        outcome = fetch(url, policy)
    except FeedUnavailable as failure:
        outcome = failure
    try:
        result = _store(factory, feed_id, outcome, now=clock())
    except NoResultFound:
        return PollResult(feed_id, url, error="the feed was removed while it was polled")
    except Exception as error:  # a bug meeting one odd feed must not stop the others
        log.exception("feed %s: import failed", feed_id)
        problem = FeedUnavailable(f"import failed: {error!r}"[:500])
        result = _store(factory, feed_id, problem, now=clock())
    if result.error:
        log.warning("feed %s (%s): %s", feed_id, redact.url(url), result.error)
    else:
        log.info("feed %s: %s imported, %s skipped", feed_id, result.imported, result.skipped)
    return result


def poll_all(
    factory: sessionmaker[Session], policy: safe_http.Policy, *, clock: Callable[[], datetime]
) -> list[PollResult]:
    """Poll every enabled feed and import new entries; a broken feed is recorded, never raised.

    Takes a sessionmaker because each feed is its own transaction, and each
    download happens outside any: a slow or broken feed holds nothing open
    and undoes nothing for the others.
    """
    with factory() as session:
        targets = session.execute(
            select(Feed.id, Feed.url).where(Feed.enabled.is_(True)).order_by(Feed.id)
        ).all()
    return [_poll_one(factory, feed_id, url, policy, clock) for feed_id, url in targets]
