"""Row identity: an id that reached the outside is never given to another row, on either database.

Links, tokens, VERP addresses and the API name rows by id. SQLite hands a
new row the id of a deleted last row unless the table is AUTOINCREMENT; a
link minted for someone who left would then open somebody else's page.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mailer import admins, api_tokens, campaigns, clock, notices, privacy
from mailer.cli import upgrade
from mailer.models import (
    AdminUser,
    ApiToken,
    AuditEntry,
    Base,
    Campaign,
    Consent,
    Delivery,
    Feed,
    Notice,
    Subscriber,
    Suppression,
    TransactionalMail,
)
from mailer.sending.links import LinkMaker
from mailer.tokens import Purpose
from tests.helpers import add_confirmed, path_of

NUMBERS = itertools.count()


def _notice(session: Session) -> int:
    draft = notices.NoticeDraft("article", "An article", "https://site.example/a")
    return notices.create_notice(session, draft, source="cli", now=clock.now())


def _campaign(session: Session) -> int:
    return campaigns.create_campaign(
        session, subject="Hello", notice_ids=[_notice(session)], now=clock.now()
    )


def _consent(session: Session) -> int:
    consent = Consent(
        subscriber_id=add_confirmed(session, f"consent{next(NUMBERS)}@example.org"),
        requested_at=clock.now(),
        ip="192.0.2.1",
        form="page",
        wording="Yes, please",
        topics="article",
    )
    session.add(consent)
    session.flush()
    return consent.id


def _added(row: object) -> Callable[[Session], int]:
    def make(session: Session) -> int:
        session.add(row)
        session.flush()
        return row.id  # type: ignore[attr-defined]

    return make


# One way to make a row of each table whose ids reach the outside; each run makes it twice.
MAKERS: dict[type, Callable[[Session], int]] = {
    Subscriber: lambda session: add_confirmed(session, "reader@example.org"),
    Consent: _consent,
    TransactionalMail: lambda session: _added(
        TransactionalMail(email="t@example.org", kind="confirm", created_at=clock.now())
    )(session),
    Suppression: lambda session: _added(
        Suppression(
            email="s@example.org", email_hash="0" * 64, reason="admin", created_at=clock.now()
        )
    )(session),
    Notice: _notice,
    Campaign: _campaign,
    Delivery: lambda session: _added(Delivery(campaign_id=1, subscriber_id=1))(session),
    ApiToken: lambda session: (
        api_tokens.create_token(session, name="cms", now=clock.now()),
        session.scalars(select(ApiToken.id)).one(),
    )[1],
    Feed: lambda session: _added(
        Feed(url="https://site.example/feed.xml", kind="article", created_at=clock.now())
    )(session),
    AdminUser: lambda session: admins.create_admin(
        session, "boss@example.com", "correct horse battery staple", "admin", clock.now()
    ),
    AuditEntry: lambda session: (
        admins.audit(session, "cli", "test.action", now=clock.now()),
        session.flush(),
        session.scalars(select(AuditEntry.id)).one(),
    )[2],
}


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda model: model.__tablename__)
def test_a_deleted_rows_id_is_never_given_to_the_next_row(session: Session, model: type) -> None:
    first = MAKERS[model](session)
    session.commit()
    session.execute(sa.delete(model))  # the last row goes: SQLite would reuse its id
    session.commit()
    second = MAKERS[model](session)
    session.commit()
    assert second > first


def test_every_table_with_ids_of_its_own_is_declared_never_to_reuse_them(backend, session) -> None:
    own_ids = [
        table
        for table in Base.metadata.sorted_tables
        if [column.name for column in table.primary_key] == ["id"]
        and table.c.id.autoincrement is not False
    ]
    assert {table.name for table in own_ids} >= {model.__tablename__ for model in MAKERS}
    for table in own_ids:
        assert table.dialect_options["sqlite"]["autoincrement"] is True, table.name
        if backend == "sqlite":  # and the database the migrations built agrees
            created = session.scalar(
                text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": table.name}
            )
            assert "AUTOINCREMENT" in created, table.name
        else:
            sequence = session.scalar(
                text("SELECT pg_get_serial_sequence(:name, 'id')"), {"name": table.name}
            )
            assert sequence, table.name


def test_a_link_for_a_reader_who_was_erased_never_opens_the_next_readers_page(app, session):
    """Issue 11 binds tokens to a per-row key too; the id alone already names nobody else."""
    settings = app.extensions["mailer.settings"]
    links = LinkMaker(settings.base_url, settings.secret_keys, settings.sender_domain)
    gone = add_confirmed(session, "gone@example.org")
    session.commit()
    key = session.get_one(Subscriber, gone).token_key
    old_link = path_of(links.url("preferences", Purpose.PREFERENCES, gone, bind=key))
    privacy.erase_subscriber(session, gone, now=clock.now())
    session.commit()
    newcomer = add_confirmed(session, "new@example.org", name="Newcomer")
    session.commit()

    assert newcomer != gone
    answer = app.test_client().get(old_link)
    assert answer.status_code in (400, 404)
    assert "new@example.org" not in answer.get_data(as_text=True)


@pytest.mark.only_backend("sqlite")
def test_migration_0009_keeps_every_row_and_sets_the_sequences_past_every_id_seen(tmp_path):
    """Only SQLite reused ids and needs its tables rebuilt; PostgreSQL's sequences never did."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0008")
    moment = "2026-12-01 09:00:00.000000"
    with sqlite3.connect(path) as old:
        old.execute("PRAGMA foreign_keys=ON")
        for number in (1, 2, 3):
            old.execute(
                "INSERT INTO subscriber (id, email, name, status, created_at, last_signup_at,"
                " time_zone, frequency, unsubscribe_channel, soft_bounces)"
                " VALUES (?, ?, '', 'confirmed', ?, ?, '', 'published', '', 0)",
                (number, f"r{number}@example.org", moment, moment),
            )
            old.execute("INSERT INTO subscriber_topic VALUES (?, 'article')", (number,))
        old.execute("DELETE FROM subscriber WHERE id = 3")  # its topics go with it (cascade)
        old.execute(
            "INSERT INTO notice (id, kind, title, url, summary, image_url, published_at,"
            " time_zone, join_url, source, created_at)"
            " VALUES (4, 'webinar', 'w', 'https://s.example/', '', '', ?, '', '', 'cli', ?)",
            (moment, moment),
        )
        old.execute(
            "INSERT INTO campaign (id, subject, intro, topics, status, created_at, kind, slot)"
            " VALUES (5, 's', '', 'article', 'finished', ?, 'reminder', 'reminder:9')",
            (moment,),
        )
        # A delivery still names subscriber 7, erased long ago (deliveries have no foreign key).
        old.execute(
            "INSERT INTO delivery (campaign_id, subscriber_id, status, attempts, message_id,"
            " last_error, notice_ids) VALUES (5, 7, 'sent', 1, '', '', '')"
        )
    upgrade(url)

    engine = sa.create_engine(url)
    with Session(engine) as session:
        assert session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all() == [1, 2]
        topics = session.execute(text("SELECT subscriber_id FROM subscriber_topic")).scalars()
        assert sorted(topics) == [1, 2]  # rebuilding subscriber cascaded into nothing
        assert session.execute(text("PRAGMA foreign_key_check")).all() == []
        assert add_confirmed(session, "next@example.org") == 8  # past the delivery's 7
        assert _notice(session) == 10  # past reminder:9, whose slot a new 9 would find taken
        session.rollback()
    engine.dispose()
