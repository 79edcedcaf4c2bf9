"""One notion of time: aware UTC in and out of both databases, wall clocks read once at the edge."""

from __future__ import annotations

import ast
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from mailer import api_tokens, campaigns, clock, notices
from mailer.cli import main, upgrade
from mailer.models import Campaign, Notice
from mailer.timestamps import NaiveDatetime
from tests.admin_helpers import post, signed_in
from tests.conftest import running_worker
from tests.helpers import add_confirmed, run_campaign

NEW_YORK, CHICAGO = ZoneInfo("America/New_York"), ZoneInfo("America/Chicago")
FIVE_PM_IN_NEW_YORK = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)  # EST is UTC-5 in December


def _article(session, title: str, published_at: datetime) -> int:
    draft = notices.NoticeDraft(
        "article", title, "https://site.example/a", published_at=published_at
    )
    return notices.create_notice(session, draft, source="cli", now=clock.now())


def _stored_text(session, notice_id: int) -> object:
    """The starts_at column as the database itself holds it, bypassing the column type."""
    return session.execute(
        text("SELECT starts_at FROM notice WHERE id = :id"), {"id": notice_id}
    ).scalar_one()


def test_a_webinar_at_five_in_new_york_is_stored_as_ten_pm_utc_from_every_edge(
    app, session, backend
):
    client = signed_in(app)
    assert (
        post(
            client,
            "/admin/notices/new",
            {
                "kind": "webinar",
                "title": "From the console",
                "url": "https://site.example/w1",
                "starts_at": "2026-12-03T17:00",
                "duration_minutes": "45",
                "time_zone": "America/New_York",
            },
        ).status_code
        == 303
    )
    token = api_tokens.create_token(session, name="cms", now=clock.now())
    session.commit()
    answer = client.post(
        "/api/v1/notices",
        json={
            "kind": "webinar",
            "title": "From the API",
            "url": "https://site.example/w2",
            "starts_at": "2026-12-03T17:00:00-05:00",
            "duration_minutes": 45,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (
        answer.status_code == 201 and answer.get_json()["starts_at"] == "2026-12-03T22:00:00+00:00"
    )
    command = CliRunner().invoke(
        main,
        [
            *("notice", "add", "--kind", "webinar", "--title", "From the CLI"),
            *("--url", "https://site.example/w3", "--starts-at", "2026-12-03T17:00:00-05:00"),
            *("--duration-minutes", "45"),
        ],
        obj=ScriptInfo(create_app=lambda: app),
    )
    assert command.exit_code == 0, command.output

    webinars = session.scalars(select(Notice).order_by(Notice.id)).all()
    assert [notice.starts_at for notice in webinars] == [FIVE_PM_IN_NEW_YORK] * 3
    assert all(notice.starts_at.tzinfo is UTC for notice in webinars)
    stored = _stored_text(session, webinars[0].id)
    if backend == "sqlite":  # one canonical UTC text, so that text order is time order
        assert stored == "2026-12-03 22:00:00.000000"
    else:
        assert stored == FIVE_PM_IN_NEW_YORK


def test_moments_given_in_other_zones_compare_and_sort_as_moments(session):
    # 00:30 in Berlin on the 2nd is 23:30 UTC on the 1st: before 23:45 UTC, after 23:15.
    berlin = datetime(2026, 12, 2, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    ids = {
        "berlin": _article(session, "berlin", berlin),
        "late": _article(session, "late", datetime(2026, 12, 1, 23, 45, tzinfo=UTC)),
        "early": _article(session, "early", datetime(2026, 12, 1, 18, 15, tzinfo=NEW_YORK)),
    }
    session.commit()
    ordered = session.scalars(select(Notice.title).order_by(Notice.published_at)).all()
    assert ordered == ["early", "berlin", "late"]
    cutoff = datetime(2026, 12, 2, 0, 40, tzinfo=ZoneInfo("Europe/Paris"))  # 23:40 UTC
    before = session.scalars(select(Notice.id).where(Notice.published_at < cutoff)).all()
    assert sorted(before) == sorted([ids["berlin"], ids["early"]])
    assert session.get(Notice, ids["berlin"]).published_at == berlin
    assert session.get(Notice, ids["berlin"]).published_at.tzinfo is UTC


def test_raw_sql_binds_store_the_same_form_as_the_column_type(session):
    notice_id = _article(session, "raw", datetime(2026, 12, 1, tzinfo=UTC))
    moment = datetime(2026, 12, 1, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 03:00 UTC
    session.execute(
        text("UPDATE notice SET published_at = :at WHERE id = :id"), {"at": moment, "id": notice_id}
    )
    session.commit()
    found = session.scalars(select(Notice.id).where(Notice.published_at == moment)).all()
    assert found == [notice_id]
    assert session.get(Notice, notice_id).published_at == datetime(2026, 12, 1, 3, tzinfo=UTC)


def test_a_naive_datetime_never_reaches_the_database(session):
    naive = datetime(2026, 12, 1, 12, 0)  # noqa: DTZ001 - what is refused
    session.add(
        Notice(
            kind="article",
            title="t",
            url="https://s.example/",
            source="cli",
            published_at=clock.now(),
            created_at=naive,
        )
    )
    with pytest.raises(StatementError) as refused:
        session.flush()
    assert isinstance(refused.value.orig, NaiveDatetime)
    session.rollback()
    assert session.scalar(select(sa.func.count()).select_from(Notice)) == 0


def test_progress_and_time_left_on_both_databases(session):
    notice_id = _article(session, "one", clock.now())
    add_confirmed(session, "ann@example.org")
    campaign_id = campaigns.create_campaign(
        session, subject="Hello", notice_ids=[notice_id], now=clock.now()
    )
    started = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    campaigns.start_campaign(session, campaign_id, now=started)
    session.commit()
    session.expire_all()
    assert session.get(Campaign, campaign_id).started_at == started
    state = campaigns.progress(session, campaign_id, now=started + timedelta(minutes=1))
    assert (state.status, state.total, state.pending, state.sent) == ("sending", 1, 1, 0)
    assert state.seconds_left is None  # nothing sent yet: no rate to go by


def test_a_chicago_reader_sees_the_new_york_webinar_at_four_and_the_ics_in_utc(app, session, inbox):
    add_confirmed(session, "chi@example.org", ("webinar",), time_zone="America/Chicago")
    draft = notices.NoticeDraft(
        "webinar",
        "Sleep and pain",
        "https://site.example/w",
        starts_at=datetime(2026, 12, 3, 17, 0, tzinfo=NEW_YORK),
        duration_minutes=45,
        time_zone="America/New_York",
    )
    notice_id = notices.create_notice(session, draft, source="cli", now=clock.now())
    session.commit()
    with running_worker(app):
        run_campaign(app, session, [notice_id])
    [received] = inbox.wait_for("chi@example.org")
    message = received.message
    body = message.get_body(("plain",)).get_content()
    assert "Thursday 03 December 2026, 16:00 (CST)" in body
    [invitation] = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    assert "DTSTART:20261203T220000Z" in invitation.get_content().replace("\r\n", "\n")


@pytest.mark.only_backend("sqlite")
def test_migration_0009_turns_every_stored_sqlite_form_into_utc(tmp_path, monkeypatch):
    """Only SQLite ever held moments as text in several forms; PostgreSQL has timestamptz."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0008")
    with sqlite3.connect(path) as old:
        # What 0008 and the code before it wrote: SQLAlchemy's form (wall-clock
        # digits), Python's form with an offset, and CURRENT_TIMESTAMP's.
        old.executescript(
            """
            INSERT INTO notice (id, kind, title, url, summary, image_url, published_at,
                starts_at, duration_minutes, time_zone, join_url, source, created_at)
            VALUES
              (1, 'webinar', 'console', 'https://s.example/1', '', '',
               '2026-12-01 09:00:00.000000', '2026-12-03 17:00:00.000000', 45,
               'America/New_York', '', 'admin', '2026-12-01 09:00:00.000000'),
              (2, 'webinar', 'api', 'https://s.example/2', '', '',
               '2026-12-01 10:00:00+00:00', '2026-12-03 22:00:00.000000', 45,
               'America/New_York', '', 'api', '2026-12-01 10:00:00.123456+00:00'),
              (3, 'article', 'offset', 'https://s.example/3', '', '',
               '2026-12-01 12:30:00+02:00', NULL, NULL, '', '', 'cli', '2026-12-01 08:00:00');
            INSERT INTO automatic_sending (id, paused, changed_by, notices_since,
                published_until, held_campaign_ids)
            VALUES (1, 0, 'migration 0008', '2026-12-01 08:00:00', CURRENT_TIMESTAMP, '');
            """
        )
    monkeypatch.delenv("MAILER_SITE_TIME_ZONE", raising=False)
    upgrade(url)
    with sqlite3.connect(path) as migrated:
        rows = migrated.execute(
            "SELECT id, published_at, starts_at, created_at FROM notice ORDER BY id"
        ).fetchall()
        since, until = migrated.execute(
            "SELECT notices_since, published_until FROM automatic_sending"
        ).fetchone()
    assert rows == [
        (
            1,
            "2026-12-01 09:00:00.000000",
            "2026-12-03 22:00:00.000000",
            "2026-12-01 09:00:00.000000",
        ),
        (
            2,
            "2026-12-01 10:00:00.000000",
            "2026-12-03 22:00:00.000000",
            "2026-12-01 10:00:00.123456",
        ),
        (3, "2026-12-01 10:30:00.000000", None, "2026-12-01 08:00:00.000000"),
    ]
    assert since == "2026-12-01 08:00:00.000000" and len(until) == 26 and until.endswith("000")
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        order = connection.execute(
            select(Notice.id).order_by(Notice.published_at, Notice.id)
        ).scalars()
        assert list(order) == [1, 2, 3]
    engine.dispose()


def test_wall_clock_text_is_read_only_by_the_one_parser():
    """ruff's DTZ rules catch naive constructors; these two ways around them are caught here."""
    root = Path(__file__).resolve().parent.parent
    readers = []
    for path in [*root.glob("mailer/**/*.py"), *root.glob("worker/**/*.py")]:
        if path.name == "timestamps.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "fromisoformat":
                readers.append(f"{path.relative_to(root)}:{node.lineno} fromisoformat")
            naive = isinstance(node, ast.keyword) and node.arg == "tzinfo"
            if naive and isinstance(node.value, ast.Constant) and node.value.value is None:
                readers.append(f"{path.relative_to(root)}:{node.lineno} tzinfo=None")
    assert readers == []
