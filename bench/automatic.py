"""Planning automatic sends at scale: one beat tick of mailer.automatic.plan_due.

Readers in three time zones, half weekly and half as-published, each with
WEEKS weeks of automatic history (one digest a week, every reader in it), then
three new videos. Each tick is timed as the beat runs it: the weekly digest as
Tokyo's and then London's digest hour arrives, a tick with nobody due, and the
as-published window closing. The limit is the beat's period (60 s): a tick must
end well before the next one. Timing is reported, never asserted.

Run: .venv/bin/python bench/automatic.py [--readers 100000] [--weeks 10]   (about 2 minutes)
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from services import database_url, fresh_database
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from mailer import automatic
from mailer.db import make_engine

MONDAY = datetime(2027, 3, 15, tzinfo=UTC)
BEAT_PERIOD = 60.0
NAME = "mailer_bench_auto"


def _notice(db, kind: str, title: str, at: datetime) -> int:
    return db.execute(
        "INSERT INTO notice (kind, title, url, summary, image_url, published_at, time_zone,"
        " join_url, source, created_at) VALUES (%s, %s, 'https://s.example/n', '', '', %s, '',"
        " '', 'api', %s) RETURNING id",
        (kind, title, at, at),
    ).fetchone()[0]


def set_up(db, readers: int, weeks: int) -> None:
    db.execute(
        "INSERT INTO subscriber (email, name, status, created_at, last_signup_at, confirmed_at,"
        " time_zone, frequency, unsubscribe_channel, soft_bounces)"
        " SELECT 'r' || i || '@example.org', '', 'confirmed', '2026-01-01', '2026-01-01',"
        " '2026-01-01', (ARRAY['', 'Asia/Tokyo', 'America/New_York'])[1 + i % 3],"
        " CASE WHEN i % 2 = 0 THEN 'weekly' ELSE 'published' END, '', 0"
        f" FROM generate_series(1, {readers}) i"
    )
    db.execute(
        "INSERT INTO subscriber_topic SELECT id, t FROM subscriber,"
        " unnest(ARRAY['article', 'video', 'webinar']) t"
    )
    for week in range(weeks):  # history: one automatic digest a week, every reader in it
        at = MONDAY - timedelta(weeks=weeks - week)
        notice_id = _notice(db, "article", f"A{week}", at - timedelta(days=2))
        campaign_id = db.execute(
            "INSERT INTO campaign (subject, intro, topics, status, created_at, kind, slot)"
            " VALUES ('w', '', 'article,video,webinar', 'finished', %s, 'weekly', %s)"
            " RETURNING id",
            (at, f"weekly:history-{week}"),
        ).fetchone()[0]
        db.execute("INSERT INTO campaign_notice VALUES (%s, %s, 0)", (campaign_id, notice_id))
        db.execute(
            "INSERT INTO delivery (campaign_id, subscriber_id, status, attempts, message_id,"
            " last_error, notice_ids, notices_until)"
            " SELECT %s, id, 'sent', 1, '', '', %s, %s FROM subscriber",
            (campaign_id, str(notice_id), at),
        )
    for day in (2, 3, 4):
        _notice(db, "video", f"New video {day}", MONDAY - timedelta(days=day))
    db.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=10)
    args = parser.parse_args()

    with fresh_database(NAME) as db:
        started = time.perf_counter()
        set_up(db, args.readers, args.weeks)
        print(
            f"set-up: {args.readers} readers, {args.readers * args.weeks} deliveries of history"
            f" in {time.perf_counter() - started:.1f}s"
        )
        engine = make_engine(database_url(NAME))
        factory = sessionmaker(engine)
        schedule = automatic.Schedule(site_time_zone="Europe/London")
        ticks = [
            ("weekly, Tokyo due", MONDAY - timedelta(hours=1)),
            ("weekly, London due", MONDAY + timedelta(hours=8)),
            ("nobody due (the next tick)", MONDAY + timedelta(hours=8, minutes=1)),
            ("as published, window closes", MONDAY + timedelta(hours=9)),
        ]
        print(f"{'tick':32} {'seconds':>8} {'x beat period':>14} {'deliveries':>11}")
        for label, now in ticks:
            with factory() as session:
                before = session.scalar(text("SELECT count(*) FROM delivery"))
                started = time.perf_counter()
                automatic.plan_due(session, schedule, now=now)
                session.commit()
                took = time.perf_counter() - started
                planned = session.scalar(text("SELECT count(*) FROM delivery")) - before
            print(f"{label:32} {took:8.2f} {took / BEAT_PERIOD:14.3f} {planned:11}")
        engine.dispose()


if __name__ == "__main__":
    main()
