"""Reading the bounce mailbox: reports processed per second from a Maildir of mixed reports.

10,000 reports (--reports) drawn from the real-world corpus (tests/bounces/)
in a mix like a bad day's: mostly RFC 3464 DSNs, some older MTAs' text
bounces, delay warnings, auto-replies and ARF complaints, and a few no
detector understands. Each is re-addressed to the VERP address of its own
delivery in a sent campaign, as the delivering MTA hands it over, and the
Maildir is processed the way the beat does it (mailer.mailbox.process, runs
of at most 2,000 messages) on PostgreSQL.

The limit: the beat reads the mailbox every 300 s and takes up to 2,000
messages a run, so it must read 6.7 reports/s to finish a run within its
period. That covers a bad day of a large list: a 1,000,000-reader campaign
sent at 50 mails/s takes 5.6 hours, and if 10 % of it bounces while it goes
out, 5 reports/s arrive. The figure is printed with its ratio to 6.7/s;
nothing is asserted.

Run: .venv/bin/python bench/bounces.py [--reports 10000]   (about a minute)
"""

from __future__ import annotations

import argparse
import mailbox as stdlib_mailbox
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from services import database_url, fresh_database
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.bounce_corpus

from mailer import mailbox, tokens
from mailer.db import make_engine
from mailer.sending.links import LinkMaker
from tests import bounce_corpus

NAME = "mailer_bench_bounces"
SECRET = "bench-secret-key"
BEAT_PERIOD = 300.0
NEEDED = mailbox.MAX_PER_RUN / BEAT_PERIOD  # reports/s to finish a run within the period
SENT_AT = datetime(2027, 3, 15, 9, tzinfo=UTC)
# Shares of a bad day's mailbox, by what the corpus sample is.
MIX = {"dsn": 0.55, "legacy": 0.17, "warning": 0.10, "auto-reply": 0.08, "arf": 0.06, "odd": 0.04}


def _kind(sample: bounce_corpus.Sample) -> str:
    name = sample.name
    if name.startswith("arf"):
        return "arf"
    if sample.expect == "ignored":
        return "auto-reply"
    if name in bounce_corpus.UNRECOGNISED:
        return "odd"
    if sample.expect == "soft":
        return "warning"
    return "dsn" if name.startswith(("dsn", "postfix")) else "legacy"


def set_up(db, count: int) -> None:
    db.execute(
        "INSERT INTO subscriber (email, name, status, created_at, last_signup_at, confirmed_at,"
        " time_zone, frequency, unsubscribe_channel, soft_bounces)"
        " SELECT 'r' || i || '@example.org', '', 'confirmed', %s, %s, %s, '', 'published', '', 0"
        f" FROM generate_series(1, {count}) i",
        (SENT_AT, SENT_AT, SENT_AT),
    )
    db.execute(
        "INSERT INTO campaign (subject, intro, topics, status, created_at, kind)"
        " VALUES ('New this week', '', 'article', 'finished', %s, 'manual')",
        (SENT_AT,),
    )
    db.execute(
        "INSERT INTO delivery (campaign_id, subscriber_id, status, attempts, sent_at, message_id,"
        " last_error, notice_ids) SELECT 1, id, 'sent', 1, %s,"
        " '<bench.' || id || '@mailer.test>', '', '' FROM subscriber ORDER BY id",
        (SENT_AT,),
    )
    db.execute("ANALYZE")


def fill(directory: str, db, count: int) -> Counter[str]:
    """The Maildir: `count` corpus samples in the MIX, each to its own delivery's VERP address."""
    by_kind: dict[str, list[bounce_corpus.Sample]] = {}
    for sample in bounce_corpus.samples():
        by_kind.setdefault(_kind(sample), []).append(sample)
    rng = random.Random(12)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    links = LinkMaker("https://news.mailer.test", SECRET, "mailer.test")
    box = stdlib_mailbox.Maildir(directory, create=True)
    rows = db.execute(
        "SELECT d.id, s.email FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id"
        " ORDER BY d.id"
    ).fetchall()
    for kind, (delivery_id, email) in zip(kinds, rows, strict=False):
        sample = rng.choice(by_kind[kind])
        verp = links.return_path(tokens.Purpose.BOUNCE, delivery_id)
        box.add(bounce_corpus.readdress(sample, to=verp, recipient=email))
    return Counter(kinds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    args = parser.parse_args()
    with fresh_database(NAME) as db, tempfile.TemporaryDirectory() as tmp:
        set_up(db, args.reports)
        directory = os.path.join(tmp, "bounces")
        mix = fill(directory, db, args.reports)
        print("mix: " + ", ".join(f"{kind} {mix[kind]}" for kind in MIX))
        engine = make_engine(database_url(NAME))
        factory = sessionmaker(engine)
        outcomes: Counter[str] = Counter()
        runs = 0
        started = time.perf_counter()
        while True:
            counts = mailbox.process(
                f"maildir://{directory}", factory, secret_key=SECRET, clock=lambda: SENT_AT
            )
            if not counts:
                break
            runs += 1
            outcomes.update(counts)
        took = time.perf_counter() - started
        engine.dispose()
    done = sum(outcomes.values())
    rate = done / took
    print("outcomes: " + ", ".join(f"{name} {count}" for name, count in outcomes.most_common()))
    print(f"{done} reports in {runs} runs, {took:.1f} s: {rate:.0f} reports/s")
    print(
        f"needed: {NEEDED:.1f} reports/s (a run of {mailbox.MAX_PER_RUN} within the"
        f" {BEAT_PERIOD:.0f} s beat period): {rate / NEEDED:.0f}x"
    )


if __name__ == "__main__":
    main()
