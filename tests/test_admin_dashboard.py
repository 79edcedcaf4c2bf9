"""The dashboard: subscribers by state, signups and confirmations per day, last campaigns."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mailer import campaigns, clock, notices, stats, suppression
from mailer.models import Delivery, Subscriber, SuppressionReason
from tests.admin_helpers import signed_in

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _subscriber(
    session: Session,
    email: str,
    status: str,
    created: datetime,
    confirmed: datetime | None = None,
    campaign_id: int | None = None,
) -> int:
    row = Subscriber(
        email=email,
        status=status,
        created_at=created,
        last_signup_at=created,
        confirmed_at=confirmed,
        unsubscribed_campaign_id=campaign_id,
    )
    session.add(row)
    session.flush()
    return row.id


def _population(session: Session, now: datetime) -> None:
    """2 pending, 3 confirmed (one complained), 1 bounced, 1 unsubscribed; ages in days."""
    day = timedelta(days=1)
    for email, status, created, confirmed in (
        ("p1@example.org", "pending", now - timedelta(hours=2), None),
        ("p2@example.org", "pending", now - 3 * day, None),
        ("c1@example.org", "confirmed", now - 3 * day, now),
        ("c2@example.org", "confirmed", now - 40 * day, now - 39 * day),
        ("old@example.org", "confirmed", now - 400 * day, now - 400 * day),
        ("bounced@example.org", "confirmed", now - 50 * day, now - 50 * day),
        ("gone@example.org", "unsubscribed", now - 5 * day, now - 4 * day),
    ):
        _subscriber(session, email, status, created, confirmed)
    suppression.suppress(session, "bounced@example.org", SuppressionReason.HARD_BOUNCE, now=now)
    suppression.suppress(session, "old@example.org", SuppressionReason.COMPLAINT, now=now)


def test_subscribers_by_state_count_bounces_apart(session: Session) -> None:
    _population(session, NOW)
    counts = stats.subscriber_counts(session)
    # The complaint is suppressed but not bounced: it stays among the confirmed.
    assert (counts.pending, counts.confirmed, counts.unsubscribed, counts.bounced) == (2, 3, 1, 1)


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_signups_and_confirmations_per_day_in_the_site_zone(
    make_app: Callable[..., Flask], sqlite_url: str, database: str
) -> None:
    app = make_app(**({"database_url": sqlite_url} if database == "sqlite" else {}))
    with app.extensions["mailer.sessionmaker"]() as session:
        _population(session, NOW)
        # 01:30 UTC on the 24th is still the 23rd in New York.
        _subscriber(
            session, "night@example.org", "pending", datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
        )
        session.commit()
        days = stats.daily_signups(session, now=NOW, days=90, zone="America/New_York")
        utc_days = stats.daily_signups(session, now=NOW, days=90)
        rate = stats.confirmation_rate(session, now=NOW)
    assert (
        len(days) == 90 and days[-1].day == date(2026, 11, 24) and days[0].day == date(2026, 8, 27)
    )
    by_day = {day.day: (day.signups, day.confirmations) for day in days}
    assert by_day[date(2026, 11, 24)] == (1, 1)  # p1 at 13:00 local; c1 confirmed now
    assert by_day[date(2026, 11, 23)] == (1, 0)  # the night signup, local time
    assert by_day[date(2026, 11, 21)] == (2, 0)  # p2 and c1
    assert by_day[date(2026, 10, 15)] == (1, 0)  # c2, 40 days ago
    assert sum(day.signups for day in days) == 7  # old@ is older than 90 days
    assert {day.day: day.signups for day in utc_days}[date(2026, 11, 24)] == 2
    # Last 7 days: p1, p2, c1, gone, night signed up; c1 and gone confirmed.
    assert rate == pytest.approx(2 / 5)


def test_dashboard_page_shows_states_chart_rate_and_last_campaigns(app: Flask) -> None:
    with app.extensions["mailer.sessionmaker"]() as session:
        now = clock.now()
        notice_id = notices.create_notice(
            session,
            notices.NoticeDraft("article", "An article", "https://site.example/a"),
            source="cli",
            now=now,
        )
        campaign_id = campaigns.create_campaign(
            session, subject="November digest", notice_ids=[notice_id], now=now
        )
        _population(session, now)
        ids = [
            _subscriber(session, f"r{n}@example.org", "confirmed", now, now, None) for n in range(6)
        ]
        _subscriber(session, "left@example.org", "unsubscribed", now, now, campaign_id)
        for subscriber_id, status in zip(
            ids, ["sent", "sent", "sent", "failed", "bounced", "queued"], strict=True
        ):
            session.add(
                Delivery(campaign_id=campaign_id, subscriber_id=subscriber_id, status=status)
            )
        session.commit()
    client = signed_in(app, "editor", "ed@example.com")
    page = client.get("/admin/").get_data(as_text=True)
    figures = dict(re.findall(r'id="(count-\w+|confirmation-rate)">([^<]+)<', page))
    assert figures == {
        "count-confirmed": "9",
        "count-pending": "2",
        "count-unsubscribed": "2",
        "count-bounced": "1",
        # Last 7 days: p1, p2, c1, gone, six readers and left signed up; all but p1, p2 confirmed.
        "confirmation-rate": "82%",
    }
    assert (
        '<svg class="chart"' in page
        and "Signups, imports, confirmations and net growth per day" in page
    )
    assert "<polyline" in page and "<rect" in page
    row = re.search(r"November digest</a></td>(.*?)</tr>", page, re.S)
    assert row
    cells = re.findall(r'<td class="num">(\d+)</td>', row.group(1))
    assert cells == ["3", "1", "1", "1"]  # sent, failed, bounced, unsubscribed
