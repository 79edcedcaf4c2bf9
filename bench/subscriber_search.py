"""Subscriber search on 1,000,000 rows, and the streaming CSV import and export.

Run: .venv/bin/python bench/subscriber_search.py   (about 8 minutes on 2 cores;
--rows and --import-rows for other sizes, --explain to print each query's plan)

A fresh PostgreSQL database (`mailer_bench_search`, built by the migrations,
dropped afterwards) is filled with --rows subscribers in one INSERT ...
SELECT over generate_series: names from 40 first names x 40 surnames,
addresses `first.last<n>@<domain>` over 8 domains, states 70 % confirmed,
10 % pending, 15 % unsubscribed (suppressed as the app does), 2 % bounced
(confirmed rows with a hard_bounce suppression), topics each about 60 %
article, 50 % video, 30 % webinar. The subscriber indexes are dropped for
the load and rebuilt from their own definitions, then ANALYZE.

search: each query goes through mailer.subscriber_search.search, the console's
own code path (the page's rows plus their topics), on one session, 5 warm-up
runs then --repeat timed runs; median and p95 in ms, and the p95 as a share of
the 200 ms limit. Deep pages are keyset pages from 90 % down the list. Then
the bounce filters again with 1 in 500 bounces kept (in a rolled-back
transaction): real bounce rates are far below 2 %.

export: mailer.subscriber_search.iter_matching over every row (what the CSV
export streams), rows/s. import: `mailer subscribers import` in its own
process, with --consent-proof, for each of --import-rows new addresses, then
10,000 without (confirmation mails queued in the claimed Redis database, which
is emptied afterwards); rows/s and the process's peak RSS, which must not grow
with the file: it streams. Last, the console's upload -> preview -> import of
a file at its size limit, through Flask's test client. Timing is reported,
never asserted.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# bench/ holds dkim.py, which would shadow the dkimpy package the app imports:
# this folder moves to the end of sys.path (services is still found there).
if (HERE := os.path.dirname(os.path.realpath(__file__))) in sys.path:
    sys.path.append(sys.path.pop(sys.path.index(HERE)))

from services import database_url, fresh_database, redis_claim
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from mailer import subscriber_search
from mailer.subscriber_search import SubscriberFilter

DATABASE = "mailer_bench_search"
LIMIT_MS = 200.0
FIRST = [
    "Maria",
    "Anna",
    "John",
    "Peter",
    "Susan",
    "Linda",
    "James",
    "Robert",
    "Mary",
    "Patricia",
    "Jennifer",
    "Michael",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Joseph",
    "Thomas",
    "Sarah",
    "Karen",
    "Nancy",
    "Lisa",
    "Betty",
    "Daniel",
    "Matthew",
    "Sandra",
    "Ashley",
    "Kimberly",
    "Donna",
    "Emily",
    "Carol",
    "Michelle",
    "Amanda",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Rebecca",
    "Laura",
    "Helen",
]
LAST = [
    "Garcia",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
]
DOMAINS = [
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "aol.com",
    "icloud.com",
    "example.org",
    "web.de",
]


def _array(words: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{word}'" for word in words) + "]"


def load(connection, rows: int) -> float:
    """Fill the subscriber, subscriber_topic and suppression tables; return seconds."""
    started = time.perf_counter()
    indexes = dict(
        connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'subscriber' "
            "AND indexname <> 'pk_subscriber'"
        ).fetchall()
    )
    for name in indexes:
        connection.execute(f"ALTER TABLE subscriber DROP CONSTRAINT IF EXISTS {name}")
        connection.execute(f"DROP INDEX IF EXISTS {name}")
    connection.execute("SELECT setseed(0.42)")
    connection.execute(
        f"""
        INSERT INTO subscriber (id, email, name, status, created_at, last_signup_at,
            confirmed_at, unsubscribed_at, time_zone, frequency, unsubscribe_channel,
            soft_bounces)
        SELECT n,
            lower(first) || '.' || lower(last) || n || '@' || domain,
            first || ' ' || last,
            status,
            at, at,
            CASE WHEN status <> 'pending' THEN at + interval '5 minutes' END,
            CASE WHEN status = 'unsubscribed' THEN at + interval '30 days' END,
            '', 'published',
            CASE WHEN status = 'unsubscribed' THEN 'one-click' ELSE '' END,
            0
        FROM (
            SELECT n,
                ({_array(FIRST)})[1 + floor(random() * {len(FIRST)})::int] AS first,
                ({_array(LAST)})[1 + floor(random() * {len(LAST)})::int] AS last,
                ({_array(DOMAINS)})[1 + floor(random() * {len(DOMAINS)})::int] AS domain,
                CASE WHEN r < 0.10 THEN 'pending' WHEN r < 0.25 THEN 'unsubscribed'
                     ELSE 'confirmed' END AS status,
                now() - ({rows} - n) * interval '1 minute' AS at
            FROM (SELECT n, random() AS r FROM generate_series(1, {rows}) AS n) AS numbers
        ) AS people
        """
    )
    connection.execute(f"SELECT setval('subscriber_id_seq', {rows})")
    for topic, share in (("article", 0.6), ("video", 0.5), ("webinar", 0.3)):
        connection.execute(
            "INSERT INTO subscriber_topic (subscriber_id, topic) "
            f"SELECT id, '{topic}' FROM subscriber WHERE random() < {share}"
        )
    # Unsubscribed rows are suppressed as the app does; 2 % of all rows bounced.
    connection.execute(
        """
        INSERT INTO suppression (email, email_hash, reason, created_at)
        SELECT email, encode(sha256(convert_to(email, 'UTF8')), 'hex'),
               CASE WHEN status = 'unsubscribed' THEN 'unsubscribed' ELSE 'hard_bounce' END,
               now()
        FROM subscriber
        WHERE status = 'unsubscribed' OR (status = 'confirmed' AND random() < 0.0286)
        """
    )
    for name, definition in indexes.items():
        if name.startswith("uq_"):
            connection.execute(f"ALTER TABLE subscriber ADD CONSTRAINT {name} UNIQUE (email)")
        else:
            connection.execute(definition)
    connection.execute("VACUUM ANALYZE subscriber")
    connection.execute("VACUUM ANALYZE subscriber_topic")
    connection.execute("VACUUM ANALYZE suppression")
    return time.perf_counter() - started


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    for _ in range(5):
        run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def queries(rows: int, someone: str) -> list[tuple[str, SubscriberFilter, dict[str, int]]]:
    deep = {"after": rows // 10}  # a keyset page 90 % down the newest-first list
    return [
        ("page 1, no filter", SubscriberFilter(), {}),
        ("deep page, no filter", SubscriberFilter(), deep),
        ("previous page (before=), deep", SubscriberFilter(), {"before": rows // 10}),
        ("address prefix 'maria.garcia1'", SubscriberFilter(query="maria.garcia1"), {}),
        ("address, one person (whole address)", SubscriberFilter(query=someone), {}),
        ("'com' (in every address)", SubscriberFilter(query="com"), {}),
        ("'gmail' (1 in 8)", SubscriberFilter(query="gmail"), {}),
        ("rare 'garcia99'", SubscriberFilter(query="garcia99"), {}),
        ("rare 'flores12345'", SubscriberFilter(query="flores12345"), {}),
        ("address prefix, deep page", SubscriberFilter(query="maria.garcia1"), deep),
        ("domain '@web.de'", SubscriberFilter(query="@web.de"), {}),
        ("domain '@web.de', deep page", SubscriberFilter(query="@web.de"), deep),
        ("name 'Garcia'", SubscriberFilter(query="Garcia"), {}),
        ("name 'maria garcia'", SubscriberFilter(query="maria garcia"), {}),
        ("name 'maria garcia', deep page", SubscriberFilter(query="maria garcia"), deep),
        ("no match 'xylophone'", SubscriberFilter(query="xylophone"), {}),
        ("state pending + topic webinar", SubscriberFilter(state="pending", topic="webinar"), {}),
        (
            "state pending + topic webinar, deep",
            SubscriberFilter(state="pending", topic="webinar"),
            deep,
        ),
        ("state bounced", SubscriberFilter(state="bounced"), {}),
        ("state bounced, deep page", SubscriberFilter(state="bounced"), deep),
        ("state confirmed + topic video", SubscriberFilter(state="confirmed", topic="video"), {}),
        (
            "name 'garcia' + unsubscribed + article",
            SubscriberFilter(query="garcia", state="unsubscribed", topic="article"),
            {},
        ),
    ]


def explain(session: Session, flt: SubscriberFilter, keys: dict[str, int]) -> str:
    statement = subscriber_search._matching(flt)
    if "after" in keys:
        statement = statement.where(subscriber_search.Subscriber.id < keys["after"])
    statement = statement.order_by(subscriber_search.Subscriber.id.desc()).limit(51)
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    plan = session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}")).scalars()
    return "\n".join("      " + line for line in plan)


def bench_search(url: str, rows: int, repeat: int, show_plans: bool) -> None:
    engine = create_engine(url)
    print(f"\nsearch ({repeat} timed runs each, page of 50, limit {LIMIT_MS:.0f} ms):")
    print(f"  {'query':<42} {'rows':>4} {'median ms':>10} {'p95 ms':>8} {'p95/limit':>10}")
    worst = 0.0
    with Session(engine) as session:
        someone = session.scalar(text(f"SELECT email FROM subscriber WHERE id = {rows // 20}"))
        for label, flt, keys in queries(rows, someone):
            page = subscriber_search.search(session, flt, **keys)
            samples = timed(lambda f=flt, k=keys: subscriber_search.search(session, f, **k), repeat)
            worst = max(worst, p95(samples))
            print(
                f"  {label:<42} {len(page.rows):>4} {statistics.median(samples):>10.1f} "
                f"{p95(samples):>8.1f} {p95(samples) / LIMIT_MS:>9.2f}x"
            )
            if show_plans and "before" not in keys:
                print(explain(session, flt, keys))
            session.rollback()
        # Bounces are often far rarer than 2 %: keep 1 in 500 of them, in a
        # transaction that is rolled back (ANALYZE's statistics with it).
        session.execute(
            text("DELETE FROM suppression WHERE reason = 'hard_bounce' AND id % 500 <> 0")
        )
        session.execute(text("ANALYZE suppression"))
        bounced = session.scalar(
            text("SELECT count(*) FROM suppression WHERE reason <> 'unsubscribed'")
        )
        print(f"  with {bounced} bounced subscribers in all:")
        for label, flt, keys in (
            ("state bounced", SubscriberFilter(state="bounced"), {}),
            ("state bounced, deep page", SubscriberFilter(state="bounced"), {"after": rows // 10}),
            (
                "state bounced + topic webinar",
                SubscriberFilter(state="bounced", topic="webinar"),
                {},
            ),
            (
                "state confirmed + topic video",
                SubscriberFilter(state="confirmed", topic="video"),
                {},
            ),
        ):
            page = subscriber_search.search(session, flt, **keys)
            samples = timed(lambda f=flt, k=keys: subscriber_search.search(session, f, **k), repeat)
            worst = max(worst, p95(samples))
            print(
                f"  {label:<42} {len(page.rows):>4} {statistics.median(samples):>10.1f} "
                f"{p95(samples):>8.1f} {p95(samples) / LIMIT_MS:>9.2f}x"
            )
            if show_plans:
                print(explain(session, flt, keys))
        session.rollback()
    print(f"  slowest p95: {worst:.1f} ms = {worst / LIMIT_MS:.2f}x the {LIMIT_MS:.0f} ms limit")
    engine.dispose()


def bench_export(url: str) -> None:
    engine = create_engine(url)
    with Session(engine) as session:
        started = time.perf_counter()
        count = sum(1 for _ in subscriber_search.iter_matching(session, SubscriberFilter()))
        seconds = time.perf_counter() - started
    engine.dispose()
    print(f"\nexport: {count:,} rows read in {seconds:.1f} s = {count / seconds:,.0f} rows/s")


def _env(url: str, broker_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    env.update(
        MAILER_SECRET_KEY="bench-search-secret-key-of-at-least-32-characters",
        MAILER_BASE_URL="https://news.example.com",
        MAILER_FROM="Health Notices <notices@example.com>",
        MAILER_POSTAL_ADDRESS="1 Bench Street, Testville",
        MAILER_DATABASE_URL=url,
        MAILER_BROKER_URL=broker_url,
        MAILER_CHECK_DELIVERABILITY="false",
        MAILER_LOG_FORMAT="text",
    )
    return env


def write_csv(path: Path, rows: int, prefix: str) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["email", "name", "topics"])
        for n in range(rows):
            writer.writerow([f"{prefix}{n}@example.net", f"Imported {n}", "article|video"])


def bench_cli_import(env: dict[str, str], rows: int, *, proof: bool, prefix: str) -> None:
    """`mailer subscribers import` in a process of its own: rows/s and its peak RSS."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "import.csv"
        write_csv(path, rows, prefix)
        command = [str(Path(sys.executable).parent / "mailer"), "subscribers", "import", str(path)]
        if proof:
            command += ["--consent-proof", "bench: paper forms"]
        with (Path(folder) / "stderr").open("w+") as errors:
            started = time.perf_counter()
            child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
            _pid, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - started
            errors.seek(0)
            output = errors.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"import failed:\n{output[-2000:]}")
    how = "consent proof, no mail" if proof else "pending + confirmation mail queued"
    print(
        f"  {rows:>9,} rows, {how:<34} {seconds:>6.1f} s {rows / seconds:>7,.0f} rows/s "
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MB"
    )


def bench_web_import(env: dict[str, str], *, proof: bool, prefix: str) -> None:
    """The console's upload -> preview -> import for a file at the web limit."""
    import base64
    import re

    from mailer import admins, clock, create_app
    from mailer.settings import Settings
    from mailer.web.admin.subscribers import WEB_IMPORT_MAX_BYTES

    app = create_app(Settings.from_env(env))
    client = app.test_client()
    with app.extensions["mailer.sessionmaker"]() as session:
        if admins.find(session, "bench@example.com") is None:
            admins.create_admin(
                session, "bench@example.com", "bench password 12", "admin", clock.now()
            )
            session.commit()

    def token(html: str) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    client.post(
        "/admin/login",
        data={
            "csrf_token": token(client.get("/admin/login").get_data(as_text=True)),
            "email": "bench@example.com",
            "password": "bench password 12",
        },
    )
    lines = ["email,name,topics"]
    size = len(lines[0]) + 1
    while True:
        line = f"{prefix}{len(lines)}@example.net,Imported {len(lines)},article|video"
        if size + len(line) + 1 > WEB_IMPORT_MAX_BYTES:
            break
        lines.append(line)
        size += len(line) + 1
    content = ("\n".join(lines) + "\n").encode()
    form = {"csrf_token": token(client.get("/admin/subscribers/import").get_data(as_text=True))}
    if proof:
        form["consent_proof"] = "bench: paper forms"
    started = time.perf_counter()
    preview = client.post(
        "/admin/subscribers/import/preview",
        data={**form, "file": (io.BytesIO(content), "bench.csv")},
        content_type="multipart/form-data",
    )
    previewed = time.perf_counter() - started
    html = preview.get_data(as_text=True)
    content_field = re.search(r'name="content" value="([^"]*)"', html).group(1)
    assert base64.b64decode(content_field) == content
    started = time.perf_counter()
    report = client.post(
        "/admin/subscribers/import",
        data={**form, "content": content_field, "filename": "bench.csv", "topics": ["article"]},
    )
    imported = time.perf_counter() - started
    assert report.status_code == 200, report.status_code
    how = "consent proof, no mail" if proof else "pending + confirmation mail queued"
    print(
        f"  {len(lines) - 1:>9,} rows ({size / 1024 / 1024:.1f} MB), {how:<34} "
        f"preview {previewed:.1f} s, import {imported:.1f} s"
    )
    app.extensions["mailer.engine"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--import-rows",
        default="10000,100000",
        help="CLI import sizes (consent proof), comma-separated; 0 for none",
    )
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    args = parser.parse_args()
    print(
        f"subscriber search bench: {args.rows:,} rows; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores"
    )
    with (
        redis_claim(range(13, 7, -1), "bench-search", ttl=3600) as claim,
        fresh_database(DATABASE) as connection,
    ):
        version = connection.execute("SHOW server_version").fetchone()[0]
        seconds = load(connection, args.rows)
        print(
            f"PostgreSQL {version}; loaded and indexed {args.rows:,} subscribers in {seconds:.0f} s"
        )
        url = database_url(DATABASE)
        bench_search(url, args.rows, args.repeat, args.explain)
        bench_export(url)
        sizes = [int(size) for size in args.import_rows.split(",") if int(size)]
        if sizes:
            number = claim.connection_pool.connection_kwargs["db"]
            env = _env(url, f"redis://127.0.0.1:6379/{number}")
            print("\nimport, `mailer subscribers import` (1000 rows a transaction):")
            for size in sizes:
                bench_cli_import(env, size, proof=True, prefix=f"proof{size}-")
            bench_cli_import(env, min(sizes[0], 10_000), proof=False, prefix="pending-")
            print("import in the console (upload -> preview -> import), one request each:")
            bench_web_import(env, proof=True, prefix="webproof")
            bench_web_import(env, proof=False, prefix="webpending")


if __name__ == "__main__":
    main()
