"""Importing subscribers from a CSV file (columns email,name,topics; header row required).

The file is read as a stream of rows, so a million rows never sit in memory:
`check_file` reads it once to find a broken file (bad encoding, no header,
malformed CSV) before anything is written, then the caller feeds `read_rows`
to `import_chunk` a chunk at a time, committing each chunk and only then
queueing its confirmation mails. Each row is all or nothing: it is checked
in full before its subscriber, consent and mail rows are written together.

Accepted rows become either pending subscribers who get a confirmation mail
(double opt-in, as through the form), or, when the admin gives a proof of
earlier consent, confirmed subscribers whose consent record holds that proof.
"""

from __future__ import annotations

import contextlib
import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer import addresses, events, subscriptions, suppression
from mailer.errors import InvalidAddress, InvalidImportFile
from mailer.models import (
    Consent,
    MailKind,
    MailStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    Topic,
)
from mailer.subscriber_search import FORMULA_STARTS, TOPIC_SEPARATOR

COLUMNS = ("email", "name", "topics")
CHUNK_ROWS = 1000
MAX_NAME = 100
MAX_PROOF = 2000
TOPICS = tuple(topic.value for topic in Topic)
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
SUPPRESSION_WORDS = {
    "not_me": "its owner said a signup was not theirs",
    "unsubscribed": "it unsubscribed",
    "hard_bounce": "it bounced",
    "soft_bounces": "it bounced three times",
    "complaint": "its owner reported our mail as spam",
    "erased": "its owner had their data erased",
    "admin": "an admin blocked it",
}


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row as the file has it; `number` counts the header as row 1."""

    number: int
    email: str
    name: str
    topics: str
    surplus: bool  # text in fields beyond those the header names


@dataclass(frozen=True, slots=True)
class FileSummary:
    rows: int
    ignored_columns: list[str]


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How accepted rows are added, and who did it (kept on each consent record)."""

    actor: str
    source: str  # the file's name
    default_topics: tuple[str, ...] = TOPICS  # for rows whose topics cell is empty
    consent_proof: str = ""  # given: confirmed at once, with this proof as the consent
    frequency: str = "published"  # how often the imported hear from us (published, weekly)

    def __post_init__(self) -> None:
        unknown = [topic for topic in self.default_topics if topic not in TOPICS]
        if unknown or not self.default_topics:
            raise InvalidImportFile(
                f"default topics must be some of {', '.join(TOPICS)}, not {','.join(unknown)!r}"
            )
        if len(self.consent_proof) > MAX_PROOF:
            raise InvalidImportFile(f"the consent proof is longer than {MAX_PROOF} characters")


@dataclass(frozen=True, slots=True)
class RowOutcome:
    row: int
    email: str  # normalised when valid, else as the file has it
    reason: str = ""  # why the row was rejected, in words; "" when imported
    kind: str = ""  # the reason's kind, a key of REJECTION_WORDS, for counting

    @property
    def imported(self) -> bool:
        return not self.reason


# Kinds of rejection, in the order a row is checked, as the summaries name them.
REJECTION_WORDS = {
    "format": "more fields than the header",
    "address": "missing or invalid address",
    "name": "unusable name",
    "topics": "unknown topic",
    "duplicate": "duplicate in the file",
    "suppressed": "suppressed address",
    "subscriber": "already a subscriber",
}


@dataclass(slots=True)
class ChunkResult:
    outcomes: list[RowOutcome] = field(default_factory=list)
    mail_ids: list[int] = field(default_factory=list)  # queue these after the commit

    @property
    def imported(self) -> int:
        return sum(outcome.imported for outcome in self.outcomes)


def _records(stream: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    # utf-8-sig: spreadsheets write a byte-order mark in front of "CSV UTF-8".
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text, strict=True)
    number = 0
    try:
        for number, fields in enumerate(reader, start=1):
            yield number, fields
    except UnicodeDecodeError:
        raise InvalidImportFile(
            f"the file is not UTF-8 text (after row {number}); save it as CSV UTF-8"
        ) from None
    except csv.Error as error:
        raise InvalidImportFile(f"row {number + 1} is not valid CSV: {error}") from None
    finally:
        # The caller owns the file: let go of it without closing it.
        with contextlib.suppress(ValueError):
            text.detach()


def _header(fields: list[str] | None) -> list[str]:
    if fields is None:
        raise InvalidImportFile("the file is empty; it needs a header row: email,name,topics")
    columns = [name.strip().lower() for name in fields]
    if "email" not in columns:
        raise InvalidImportFile(
            "the first row must be a header naming the columns, e.g. email,name,topics "
            f"(it reads {','.join(fields)[:100]!r})"
        )
    repeated = sorted({name for name in columns if name and columns.count(name) > 1})
    if repeated:
        raise InvalidImportFile(f"the header names {', '.join(repeated)} more than once")
    return columns


def read_rows(stream: BinaryIO) -> Iterator[CsvRow]:
    """The data rows of an import file, one at a time; blank lines are skipped.

    Raises InvalidImportFile when the file has no header or is not UTF-8 CSV.
    """
    records = _records(stream)
    first = next(records, None)
    columns = _header(first[1] if first else None)
    where = {name: columns.index(name) for name in COLUMNS if name in columns}

    def cell(fields: list[str], name: str) -> str:
        index = where.get(name)
        value = fields[index] if index is not None and index < len(fields) else ""
        # Undo the export's guard against spreadsheet formulas ('=...).
        return (
            value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value
        )

    for number, fields in records:
        if not any(value.strip() for value in fields):
            continue
        yield CsvRow(
            number=number,
            email=cell(fields, "email"),
            name=cell(fields, "name"),
            topics=cell(fields, "topics"),
            # Spreadsheets pad rows with empty cells; only text beyond the header counts.
            surplus=any(value.strip() for value in fields[len(columns) :]),
        )


def check_file(stream: BinaryIO) -> FileSummary:
    """Read the whole file once, writing nothing: its row count, or InvalidImportFile."""
    records = _records(stream)
    first = next(records, None)
    columns = _header(first[1] if first else None)
    rows = sum(1 for _number, fields in records if any(value.strip() for value in fields))
    ignored = [name for name in columns if name and name not in COLUMNS]
    return FileSummary(rows=rows, ignored_columns=ignored)


def chunks(rows: Iterable[CsvRow], size: int = CHUNK_ROWS) -> Iterator[list[CsvRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(frozen=True, slots=True)
class _Candidate:
    row: int
    email: str
    name: str
    topics: tuple[str, ...]


def _check_row(row: CsvRow, default_topics: Sequence[str]) -> _Candidate | RowOutcome:
    """The row's values, cleaned; or its rejection."""
    if row.surplus:
        return RowOutcome(
            row.number, row.email, "more fields than the header has columns", "format"
        )
    if not row.email.strip():
        return RowOutcome(row.number, row.email, "no email address", "address")
    try:
        email = addresses.normalise(row.email, check_deliverability=False)
    except InvalidAddress as error:
        return RowOutcome(row.number, row.email, f"invalid address: {error}", "address")
    name = row.name.strip()
    if len(name) > MAX_NAME:
        return RowOutcome(row.number, email, f"name longer than {MAX_NAME} characters", "name")
    # Line breaks and other controls in a name are how header injection starts.
    if any(unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"} for char in name):
        return RowOutcome(
            row.number, email, "name contains line breaks or control characters", "name"
        )
    asked = [part.strip().lower() for part in row.topics.split(TOPIC_SEPARATOR) if part.strip()]
    unknown = [topic for topic in asked if topic not in TOPICS]
    if unknown:
        return RowOutcome(
            row.number,
            email,
            f"unknown topic {', '.join(unknown)!r} (topics are {'|'.join(TOPICS)})",
            "topics",
        )
    chosen = set(asked or default_topics)
    return _Candidate(row.number, email, name, tuple(t for t in TOPICS if t in chosen))


def _suppressed(session: Session, emails: Sequence[str]) -> dict[str, str]:
    """Why each listed address is suppressed, in one query (the lookup of reason_for, by hash)."""
    by_hash = {
        digest: email for email in emails for digest in suppression.address_hashes(session, email)
    }
    if not by_hash:
        return {}
    rows = session.execute(
        select(Suppression.email_hash, Suppression.reason).where(
            Suppression.email_hash.in_(by_hash)
        )
    )
    return {by_hash[digest]: reason for digest, reason in rows}


def _existing(session: Session, emails: Sequence[str]) -> dict[str, datetime]:
    if not emails:
        return {}
    rows = session.execute(
        select(Subscriber.email, Subscriber.created_at).where(Subscriber.email.in_(emails))
    )
    return {email: created for email, created in rows}


def _screen(
    session: Session, rows: Sequence[CsvRow], options: ImportOptions, now: datetime
) -> tuple[list[_Candidate], list[RowOutcome]]:
    """Split a chunk into rows to write and rows rejected, with the reason of each."""
    rejected: list[RowOutcome] = []
    first_row: dict[str, int] = {}
    candidates: list[_Candidate] = []
    for row in rows:
        checked = _check_row(row, options.default_topics)
        if isinstance(checked, RowOutcome):
            rejected.append(checked)
        elif checked.email in first_row:
            rejected.append(
                RowOutcome(
                    row.number,
                    checked.email,
                    f"duplicate of row {first_row[checked.email]}",
                    "duplicate",
                )
            )
        else:
            first_row[checked.email] = row.number
            candidates.append(checked)
    emails = [candidate.email for candidate in candidates]
    suppressed = _suppressed(session, emails)
    existing = _existing(session, emails)
    accepted = []
    for candidate in candidates:
        reason = suppressed.get(candidate.email)
        created = existing.get(candidate.email)
        if reason is not None:
            words = SUPPRESSION_WORDS.get(reason, reason)
            rejected.append(
                RowOutcome(
                    candidate.row, candidate.email, f"suppressed address: {words}", "suppressed"
                )
            )
        elif created is not None and created == now:
            # Written by this very import from an earlier chunk: every row of one
            # import carries the same `now`, which no other signup will share.
            rejected.append(
                RowOutcome(
                    candidate.row, candidate.email, "duplicate of an earlier row", "duplicate"
                )
            )
        elif created is not None:
            rejected.append(
                RowOutcome(candidate.row, candidate.email, "already a subscriber", "subscriber")
            )
        else:
            accepted.append(candidate)
    return accepted, rejected


def _wording(options: ImportOptions) -> str:
    if options.consent_proof:
        return (
            f"Imported from {options.source} by {options.actor} as already consented. "
            f"Proof of earlier consent: {options.consent_proof}"
        )
    return (
        f"Imported from {options.source} by {options.actor}. Subscribed only once the "
        "address's owner confirms the emailed link."
    )


def _record_imported(
    session: Session,
    subscriber_id: int,
    candidate: _Candidate,
    options: ImportOptions,
    *,
    now: datetime,
) -> None:
    confirmed = bool(options.consent_proof)
    status = SubscriberStatus.CONFIRMED if confirmed else SubscriberStatus.PENDING
    data = {
        "id": subscriber_id,
        "email": candidate.email,
        "name": candidate.name,
        "status": status.value,
        "topics": list(candidate.topics),
        "frequency": options.frequency,
        "form": "import",
    }
    kind = events.SUBSCRIBER_CONFIRMED if confirmed else events.SUBSCRIBER_PENDING
    events.record(session, kind, data, now=now, subscriber_id=subscriber_id)


def import_chunk(
    session: Session, rows: Sequence[CsvRow], options: ImportOptions, *, now: datetime
) -> ChunkResult:
    """Import one chunk of rows; flush, never commit. Pass the same `now` for every chunk.

    The caller commits, then queues `mail_ids` (the confirmation mails of
    pending rows; none when a consent proof is given).
    """
    accepted, rejected = _screen(session, rows, options, now)
    result = ChunkResult(outcomes=rejected)
    if not accepted:
        result.outcomes.sort(key=lambda outcome: outcome.row)
        return result
    confirmed = bool(options.consent_proof)
    # ON CONFLICT DO NOTHING: a reader who signs up in the moment between the
    # check above and this insert keeps their row; that import row is rejected.
    statement = (
        _INSERT[session.get_bind().dialect.name](Subscriber)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(Subscriber.id, Subscriber.email)
    )
    written = dict(
        (email, subscriber_id)
        for subscriber_id, email in session.execute(
            statement,
            [
                {
                    "email": candidate.email,
                    "name": candidate.name,
                    "status": SubscriberStatus.CONFIRMED if confirmed else SubscriberStatus.PENDING,
                    "created_at": now,
                    "last_signup_at": now,
                    "confirmed_at": now if confirmed else None,
                    "frequency": options.frequency,
                }
                for candidate in accepted
            ],
        )
    )
    wording = _wording(options)
    consents = {
        subscriber_id: consent_id
        for consent_id, subscriber_id in session.execute(
            insert(Consent).returning(Consent.id, Consent.subscriber_id),
            [
                {
                    "subscriber_id": written[candidate.email],
                    "requested_at": now,
                    "ip": "",
                    "user_agent": "",
                    "form": "import",
                    "source_url": "",
                    "wording": wording,
                    "topics": ",".join(candidate.topics),
                    "confirmed_at": now if confirmed else None,
                    "confirmed_ip": None,
                    "frequency": options.frequency,
                }
                for candidate in accepted
                if candidate.email in written
            ],
        )
    }
    topic_rows = [
        {"subscriber_id": written[candidate.email], "topic": topic}
        for candidate in accepted
        if confirmed and candidate.email in written
        for topic in candidate.topics
    ]
    if topic_rows:
        session.execute(insert(SubscriberTopic), topic_rows)
    mails = []
    for candidate in accepted:
        subscriber_id = written.get(candidate.email)
        if subscriber_id is None:
            result.outcomes.append(
                RowOutcome(candidate.row, candidate.email, "already a subscriber", "subscriber")
            )
            continue
        result.outcomes.append(RowOutcome(candidate.row, candidate.email))
        _record_imported(session, subscriber_id, candidate, options, now=now)
        if not confirmed:
            mails.append(
                {
                    "subscriber_id": subscriber_id,
                    "consent_id": consents[subscriber_id],
                    "email": candidate.email,
                    "kind": MailKind.CONFIRM,
                    "status": MailStatus.QUEUED,
                    "created_at": now,
                    "attempts": 0,
                    "message_id": "",
                    "last_error": "",
                }
            )
    if mails:
        # The signup's own statement (subscriptions.queue_mail), run once for
        # the chunk: a statement per row made mail rows most of an import's time.
        result.mail_ids = list(session.scalars(subscriptions.INSERT_MAIL, mails))
    session.flush()
    result.outcomes.sort(key=lambda outcome: outcome.row)
    return result


def import_file(
    session: Session,
    stream: BinaryIO,
    options: ImportOptions,
    *,
    now: datetime,
    queue_mails: Callable[[list[int]], object],
    dry_run: bool = False,
) -> Iterator[ChunkResult]:
    """Import every row of `stream`, a chunk at a time, and yield each chunk's result.

    Each chunk is committed, then its confirmation mails are handed to
    `queue_mails` (mailer.jobs.Jobs.send_mails: a broker outage leaves them to
    the beat), so a million rows never sit in memory and an import stopped
    half-way keeps what it committed. A dry run writes everything inside one
    transaction and rolls it back at the end, so a preview's verdicts are
    exactly the import's. Call `check_file` first: a file that cannot be read
    is refused before anything is written.
    """
    try:
        for chunk in chunks(read_rows(stream)):
            result = import_chunk(session, chunk, options, now=now)
            if not dry_run:
                session.commit()  # commit before queueing: the worker must find the rows
                queue_mails(result.mail_ids)
            yield result
    finally:
        if dry_run:
            session.rollback()
