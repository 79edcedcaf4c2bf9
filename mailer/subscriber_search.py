"""Finding subscribers for the admin console, and reading one subscriber's record.

Pages are keyset-paginated, newest first (id descending): the next page is
"id below the last one shown", so a deep page costs what the first does,
where OFFSET would count every row before it. On PostgreSQL the address and
name search is a substring match (ILIKE) answered by pg_trgm GIN indexes
(migration 0006); SQLite, the embedded default, scans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Select, case, func, literal, select
from sqlalchemy.orm import Session

from mailer import suppression
from mailer.errors import InvalidFilter, SubscriberNotFound
from mailer.models import (
    Campaign,
    Consent,
    Delivery,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    Topic,
    TransactionalMail,
)
from mailer.stats import BOUNCE_REASONS

PAGE_SIZE = 50
EXPORT_BATCH = 1000
HISTORY_LIMIT = 200  # deliveries and mails shown on a subscriber's page, newest first
MAX_QUERY = 320
MIN_QUERY = 3
# A subscriber whose address bounced is "bounced", whatever their status says
# (the row stays confirmed: the reader never left, but no mail reaches them),
# the same states the dashboard counts (mailer.stats).
BOUNCED = "bounced"
STATES = (
    SubscriberStatus.PENDING.value,
    SubscriberStatus.CONFIRMED.value,
    SubscriberStatus.UNSUBSCRIBED.value,
    BOUNCED,
)
TOPICS = tuple(topic.value for topic in Topic)
# The CSV export; its first three columns are the import's, so an export imports back.
EXPORT_COLUMNS = ("email", "name", "topics", "state", "created_at", "confirmed_at")
TOPIC_SEPARATOR = "|"
# A spreadsheet runs a cell starting with one of these as a formula, and names
# come from a public form: such cells are exported behind a quote (OWASP's
# CSV injection advice), which the import takes off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class SubscriberFilter:
    """What the list shows: a search text (address or name) and optional state and topic."""

    query: str = ""
    state: str = ""
    topic: str = ""

    def __post_init__(self) -> None:
        if self.state and self.state not in STATES:
            raise InvalidFilter(f"state must be one of {', '.join(STATES)}, not {self.state!r}")
        if self.topic and self.topic not in TOPICS:
            raise InvalidFilter(f"topic must be one of {', '.join(TOPICS)}, not {self.topic!r}")
        query = self.query.strip()[:MAX_QUERY]
        if 0 < len(query) < MIN_QUERY:
            # Trigram indexes need 3 characters; a shorter text would scan every row.
            raise InvalidFilter(f"type at least {MIN_QUERY} characters to search")
        object.__setattr__(self, "query", query)

    def audited(self) -> str:
        """The filter for the audit log: whether a search was typed, never what it was."""
        return json.dumps({"state": self.state, "topic": self.topic, "search": bool(self.query)})


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    id: int
    email: str
    name: str
    state: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    topics: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows; `after`/`before` are the keys of the next and previous pages."""

    rows: list[SubscriberRow]
    after: int | str | None  # pass as `after` for the next page; None on the last page
    before: int | str | None  # pass as `before` for the previous page; None on the first


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_row(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """Whether a row meets `conditions`, asked by one index probe per subscriber.

    Written as a scalar subquery with LIMIT 1 rather than EXISTS on purpose:
    PostgreSQL turns EXISTS into a join or a hashed subplan, which reads every
    bounce or topic row first (tens of ms per 50,000) however few subscribers
    the page needs. A page then walks the id (or status, id) index newest
    first, probes each row, and stops at its 51st match.
    """
    probe = select(literal(1)).where(*conditions).limit(1).scalar_subquery()
    return probe.is_not(None)


def _bounced() -> ColumnElement[bool]:
    return _has_row(Suppression.email == Subscriber.email, Suppression.reason.in_(BOUNCE_REASONS))


def _matching(flt: SubscriberFilter) -> Select:
    query = select(
        Subscriber.id,
        Subscriber.email,
        Subscriber.name,
        case((_bounced(), BOUNCED), else_=Subscriber.status).label("state"),
        Subscriber.created_at,
        Subscriber.confirmed_at,
        Subscriber.unsubscribed_at,
    )
    if flt.query:
        # One pattern for both columns, built here rather than with || in SQL,
        # so the planner sees the constant and can pick the trigram index.
        pattern = f"%{_escape_like(flt.query)}%"
        query = query.where(
            Subscriber.email.ilike(pattern, escape="\\")
            | Subscriber.name.ilike(pattern, escape="\\")
        )
    if flt.state == BOUNCED:
        # A plain semi-join here: the planner knows from the suppression
        # table's statistics whether to start from the (few) bounced addresses
        # or to walk the id index, where a row-by-row probe would walk it all
        # when bounces are rare.
        query = query.where(
            Subscriber.email.in_(
                select(Suppression.email).where(Suppression.reason.in_(BOUNCE_REASONS))
            )
        )
    elif flt.state:
        query = query.where(Subscriber.status == flt.state, ~_bounced())
    if flt.topic:
        query = query.where(
            _has_row(
                SubscriberTopic.subscriber_id == Subscriber.id, SubscriberTopic.topic == flt.topic
            )
        )
    return query


def _with_topics(session: Session, rows: Sequence) -> list[SubscriberRow]:
    ids = [row.id for row in rows]
    topics: dict[int, set[str]] = {subscriber_id: set() for subscriber_id in ids}
    if ids:
        for subscriber_id, topic in session.execute(
            select(SubscriberTopic.subscriber_id, SubscriberTopic.topic).where(
                SubscriberTopic.subscriber_id.in_(ids)
            )
        ):
            topics[subscriber_id].add(topic)
    return [
        SubscriberRow(
            id=row.id,
            email=row.email,
            name=row.name,
            state=row.state,
            created_at=row.created_at,
            confirmed_at=row.confirmed_at,
            unsubscribed_at=row.unsubscribed_at,
            topics=[topic for topic in TOPICS if topic in topics[row.id]],
        )
        for row in rows
    ]


# The orders the list offers, each on a unique column, so a page's last key is exact.
SORTS = {
    "newest": (Subscriber.id, True),
    "oldest": (Subscriber.id, False),
    "email": (Subscriber.email, False),
}
COUNT_CAP = 10_000  # beyond this the list says "more than 10,000": counting costs a scan


def page_key(sort: str, raw: str | None) -> int | str | None:
    """A page key from the URL: an id for the id orders, an address for the address order."""
    if not raw:
        return None
    if SORTS.get(sort, SORTS["newest"])[0] is Subscriber.email:
        return raw
    return int(raw) if raw.isdigit() else None


def search(
    session: Session,
    flt: SubscriberFilter,
    *,
    after: int | str | None = None,
    before: int | str | None = None,
    limit: int = PAGE_SIZE,
    sort: str = "newest",
) -> Page:
    """One page of matching subscribers in the order `sort` names (newest first by default).

    `after` (the key of a row: its id, or its address for "email") gives the
    page that follows that row; `before` the page that precedes it. One extra
    row is read to know whether there is a further page.
    """
    column, descending = SORTS.get(sort, SORTS["newest"])
    forward, backward = (
        (column.desc(), column.asc()) if descending else (column.asc(), column.desc())
    )
    query = _matching(flt)
    if before is not None:
        # Walk back from `before`, then turn the rows round into the page's order.
        beyond = column > before if descending else column < before
        rows = list(session.execute(query.where(beyond).order_by(backward).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit][::-1]
        return Page(
            _with_topics(session, rows),
            after=getattr(rows[-1], column.key) if rows else None,
            before=getattr(rows[0], column.key) if rows and more else None,
        )
    if after is not None:
        query = query.where(column < after if descending else column > after)
    rows = list(session.execute(query.order_by(forward).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        _with_topics(session, rows),
        after=getattr(rows[-1], column.key) if rows and more else None,
        before=getattr(rows[0], column.key) if rows and after is not None else None,
    )


def count(session: Session, flt: SubscriberFilter, *, cap: int = COUNT_CAP) -> int:
    """How many subscribers match, counted up to `cap` (cap + 1 means "more than cap")."""
    matching = _matching(flt).with_only_columns(Subscriber.id).limit(cap + 1).subquery()
    return session.scalar(select(func.count()).select_from(matching)) or 0


def matching_ids(session: Session, flt: SubscriberFilter, *, limit: int) -> list[int]:
    """The ids of up to `limit` matching subscribers, newest first (bulk actions)."""
    query = _matching(flt).with_only_columns(Subscriber.id).order_by(Subscriber.id.desc())
    return list(session.scalars(query.limit(limit)))


def iter_matching(
    session: Session, flt: SubscriberFilter, *, batch: int = EXPORT_BATCH
) -> Iterator[SubscriberRow]:
    """Every matching subscriber, newest first, read `batch` rows at a time (for CSV export)."""
    after: int | None = None
    while True:
        query = _matching(flt)
        if after is not None:
            query = query.where(Subscriber.id < after)
        rows = list(session.execute(query.order_by(Subscriber.id.desc()).limit(batch)))
        yield from _with_topics(session, rows)
        if len(rows) < batch:
            return
        after = rows[-1].id


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """What the subscriber's page shows: the row, its state, and the history around it."""

    subscriber: Subscriber
    state: str
    suppressed: str | None
    consents: list[Consent]
    mails: list[TransactionalMail]
    deliveries: list[tuple[Delivery, str]]  # with the campaign's subject
    unsubscribed_from: str | None  # subject of the campaign whose mail they left from


def subscriber_record(session: Session, subscriber_id: int) -> SubscriberRecord:
    """One subscriber with their consents, mails, campaign deliveries and suppression."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound(subscriber_id)
    suppressed = suppression.reason_for(session, subscriber.email)
    consents = session.scalars(
        select(Consent).where(Consent.subscriber_id == subscriber_id).order_by(Consent.id.desc())
    ).all()
    mails = session.scalars(
        select(TransactionalMail)
        .where(TransactionalMail.subscriber_id == subscriber_id)
        .order_by(TransactionalMail.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    deliveries = session.execute(
        select(Delivery, Campaign.subject)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    unsubscribed_from = (
        session.scalar(
            select(Campaign.subject).where(Campaign.id == subscriber.unsubscribed_campaign_id)
        )
        if subscriber.unsubscribed_campaign_id
        else None
    )
    return SubscriberRecord(
        subscriber=subscriber,
        state=BOUNCED if suppressed in BOUNCE_REASONS else subscriber.status,
        suppressed=suppressed,
        consents=list(consents),
        mails=list(mails),
        deliveries=[(delivery, subject) for delivery, subject in deliveries],
        unsubscribed_from=unsubscribed_from,
    )


def _spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def export_fields(row: SubscriberRow) -> list[str]:
    """One CSV line of the export, in EXPORT_COLUMNS order."""
    return [
        _spreadsheet_safe(row.email),
        _spreadsheet_safe(row.name),
        TOPIC_SEPARATOR.join(row.topics),
        row.state,
        row.created_at.isoformat(),
        row.confirmed_at.isoformat() if row.confirmed_at else "",
    ]
