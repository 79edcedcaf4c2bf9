"""Campaign sending: throughput against a bare loop, planning, worker memory, embedded default.

Run: .venv/bin/python bench/campaign.py     (about 11 minutes on 2 cores; --quick: about 3)

Default sizes: the issue's (100,000 for throughput, 1,000,000 for planning,
10,000 embedded) except memory, which compares 10,000 with 100,000 recipients
(the throughput campaign doubles as the large one) rather than 20,000 with
200,000: at ~230 msg/s here a 200,000 campaign alone takes ~15 minutes. Add
`--memory 20000,200000` for the issue's sizes (about 26 minutes in all).

Everything runs on this machine over 127.0.0.1: PostgreSQL (database
`mailer_bench_campaign`, dropped and recreated), Redis (a database claimed with
the test suite's lock key, emptied before and after), an aiosmtpd sink in its
own process (bench/counting_sink.py: counts messages and unique envelope
recipients), and one real `celery -A worker.app worker --queues
transactional,bulk --concurrency 2` (a main process and 2 prefork children:
the Procfile's worker on 2 cores, and what `make run` starts), fresh for each
campaign. Every recipient is a confirmed subscriber of all three topics, so each
message is the same digest of 5 notices (2 articles, 2 videos, 1 webinar with
its .ics invitation). MAILER_SEND_RATE=0: no token bucket.

Phases, each printing its figures:

- limit: bench/bare_campaign.py in 2 processes renders the same digest once,
  then builds each message with email.message.EmailMessage and sends it over
  one persistent smtplib connection: no database, no broker.
- campaign: `start` (mailer.campaigns.start_campaign + commit, then
  mailer.jobs start_sending) to the last message the sink accepted, for the
  throughput list size on PostgreSQL + Redis. Target: >= 0.7x the limit.
  After each campaign, claim_batch is timed with 90 % of the list sent
  (rebuilt in a rolled-back transaction), and its plan printed: what it
  walks to find the next batch decides whether it grows with the list.
- memory: the same campaign at a small and a large list size, each with a
  fresh worker; peak RSS (VmHWM) of every worker process, and the worker's
  peak total PSS (main + children, sampled), read from /proc. Target: no
  process over 250 MB at the large size, and no growth with the list.
- planning: start_campaign's INSERT ... SELECT of the Delivery rows for the
  planning list size (default 1,000,000), on an empty ledger and then for a
  second campaign beside the first one's rows. Target: < 10 s.
- embedded: the campaign at the embedded size on SQLite with kombu's
  SQLAlchemy broker on SQLite (what `make run` uses, with the sink instead of
  the outbox folder). No target: what the default can do.
- embedded-rate: the same with MAILER_SEND_RATE=50 (the default, which `make
  run` keeps), 1,000 recipients: the 2 pool processes share one bucket (a
  file beside the broker's database), so together they send at most 50/s.
- profile (--profile N): the worker path (mailer.sending.batch.send_batch, in this
  process, batches until the campaign is done) under cProfile, for N
  recipients, broken down by where the wall time goes.

Correctness, checked after every sending phase: the sink accepted exactly one
message per recipient (count and unique envelope recipients), every Delivery
row is `sent`, the campaign is finished, and the first message carries the
digest (5 notices, text + HTML + .ics). The script exits non-zero when a check
fails; timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import platform
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import psycopg
import redis
from services import (
    REDIS_BASE,
    database_url,
    empty_redis,
    free_port,
    fresh_database,
    redis_claim,
)
from sqlalchemy import event, insert, text

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_NAME = "mailer_bench_campaign"
DATABASE_URL = database_url(PG_NAME)
# Claimed with the test suite's lock key (tests/conftest.py), first free one wins.
REDIS_DBS = (13, 12, 11, 10, 9, 8)
TARGET_RATIO = 0.7
TARGET_PLAN_SECONDS = 10.0
PLAN_TARGET_SIZE = 1_000_000
EMBEDDED_RATE = 50.0  # MAILER_SEND_RATE's default, which `make run` keeps
TARGET_RSS_MB = 250.0
FLAT_GROWTH = 1.10  # "no growth": the large list's peak within 10 % of the small one's
STALL_SECONDS = 60.0  # a campaign that sends nothing for this long is given up
TICKS = os.sysconf("SC_CLK_TCK")
SUBJECT = "New this week: five notices"
WORKER_ARGS = ("worker", "--queues", "transactional,bulk", "--concurrency", "2")

NOTICES = (
    ("article", "Naltrexone for fibromyalgia: what the trials found", ""),
    ("article", "Sleep, pain and the evidence for CBT-I", ""),
    ("video", "Gentle stretches for the morning", "https://site.example/v/stretch.jpg"),
    ("video", "Pacing: a physiotherapist explains", "https://site.example/v/pacing.jpg"),
    ("webinar", "Ask the pain clinic: live questions", ""),
)
SUMMARY = (
    "A short summary of the notice, as editors write them: two or three sentences on what "
    "the piece covers, who it is for and why it matters now. "
) * 2


def clock() -> float:
    """CLOCK_MONOTONIC: one clock for this process, the sink and the bare senders."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Sizes:
    limit: int
    campaign: int
    memory_small: int
    memory_large: int
    plan: int
    embedded: int
    embedded_rated: int = 1_000  # at MAILER_SEND_RATE=50: about 20 s


DEFAULT = Sizes(
    limit=10_000,
    campaign=100_000,
    memory_small=10_000,
    memory_large=100_000,
    plan=1_000_000,
    embedded=10_000,
)
QUICK = Sizes(
    limit=6_000,
    campaign=20_000,
    memory_small=2_000,
    memory_large=20_000,
    plan=200_000,
    embedded=2_000,
    embedded_rated=500,
)
PHASES = ("limit", "campaign", "memory", "plan", "embedded", "embedded-rate", "profile")


# --------------------------------------------------------------------------- /proc


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) from /proc/PID/status and Pss from smaps_rollup, in kB."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                values["Pss"] = int(line.split()[1])
    return values


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(child) for child in (task / "children").read_text().split())
    return found


def machine_busy() -> float:
    """CPU seconds the machine has been busy (all cores, all processes) since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICKS


def pg_backends() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to the bench database."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if f"postgres {PG_NAME} " in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found[int(entry.name)] = proc_cpu(int(entry.name))
    return found


# --------------------------------------------------------------------------- services


def mailer_env(database_url: str, broker_url: str, smtp_port: int = 25) -> dict[str, str]:
    """The MAILER_* environment of the bench's app, the workers and the bare senders."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    return {
        **base,
        "MAILER_SECRET_KEY": "bench-campaign-secret-key-of-at-least-32-characters",
        "MAILER_BASE_URL": "https://news.example.com",
        "MAILER_FROM": "Health Notices <notices@example.com>",
        "MAILER_POSTAL_ADDRESS": "1 Bench Street, Testville",
        "MAILER_DATABASE_URL": database_url,
        "MAILER_BROKER_URL": broker_url,
        "MAILER_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "MAILER_SEND_RATE": "0",  # unlimited: the token bucket would cap at 50/s
        "MAILER_CHECK_DELIVERABILITY": "false",
        "MAILER_LOG_FORMAT": "text",
    }


def make_app(env: dict[str, str]) -> Any:
    from mailer import create_app
    from mailer.settings import Settings

    return create_app(Settings.from_env(env))


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL to its process group (it was started in a session of its own)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # pool children left behind, if any
    process.wait()


class Sink:
    """bench/counting_sink.py in its own process, on a free port."""

    def __init__(self, work: Path, name: str) -> None:
        self.port = free_port()
        self.status_file = work / f"sink-{name}.json"
        self.sample_file = work / f"sink-{name}.eml"
        self.log = work / f"sink-{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "counting_sink.py"),
                    str(self.port),
                    str(self.status_file),
                    str(self.sample_file),
                ],
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        try:
            deadline = clock() + 20
            while not self.status_file.exists():
                if self.process.poll() is not None or clock() > deadline:
                    sys.exit(f"the SMTP sink did not start:\n{self.log.read_text()[-2000:]}")
                time.sleep(0.05)
        except BaseException:  # Ctrl-C while it starts, too: no sink left behind
            stop_process(self.process, timeout=5)
            raise

    def status(self) -> dict[str, Any]:
        for _ in range(20):
            with contextlib.suppress(OSError, ValueError):
                return json.loads(self.status_file.read_text())
            time.sleep(0.01)
        return json.loads(self.status_file.read_text())

    def stop(self) -> dict[str, Any]:
        stop_process(self.process, timeout=10)
        return self.status()


@contextmanager
def sink(work: Path, name: str) -> Iterator[Sink]:
    running = Sink(work, name)
    try:
        yield running
    finally:
        running.stop()


class Worker:
    """One `celery -A worker.app worker --concurrency 2`, ready when it says so."""

    def __init__(self, env: dict[str, str], work: Path, name: str) -> None:
        self.log = work / f"worker-{name}.log"
        command = [
            str(BIN / "celery"),
            *("-A", "worker.app", *WORKER_ARGS, "--loglevel", "INFO", "-n", f"bench-{name}@%h"),
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
            )
        try:
            deadline = clock() + 60
            while " ready." not in self.log.read_text(errors="replace"):
                if self.process.poll() is not None or clock() > deadline:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    sys.exit(f"the celery worker did not get ready:\n{tail}")
                time.sleep(0.1)
        except BaseException:  # Ctrl-C while it starts, too: no worker left behind
            stop_process(self.process, timeout=10)
            raise
        self.peaks: dict[int, int] = {}  # pid -> VmHWM kB
        self.pss_peak = 0  # kB, main + children, sampled

    def pids(self) -> list[int]:
        return descendants(self.process.pid)

    def cpu(self) -> dict[int, float]:
        return {pid: proc_cpu(pid) for pid in self.pids()}

    def sample(self) -> dict[int, dict[str, int]]:
        """Memory of every worker process now; keeps the peaks."""
        memory = {pid: proc_memory(pid) for pid in self.pids()}
        for pid, values in memory.items():
            self.peaks[pid] = max(self.peaks.get(pid, 0), values.get("VmHWM", 0))
        self.pss_peak = max(self.pss_peak, sum(values.get("Pss", 0) for values in memory.values()))
        return memory

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def worker(env: dict[str, str], work: Path, name: str) -> Iterator[Worker]:
    running = Worker(env, work, name)
    try:
        yield running
    finally:
        running.stop()


# --------------------------------------------------------------------------- data


def create_notices(app: Any) -> list[int]:
    """The digest's five notices, through the app's own way in."""
    from mailer import notices

    now = datetime.now(UTC)
    ids = []
    with app.extensions["mailer.sessionmaker"]() as session:
        for number, (kind, title, image) in enumerate(NOTICES, 1):
            draft = notices.NoticeDraft(
                kind=kind,
                title=title,
                url=f"https://site.example/{kind}/{number}",
                summary=SUMMARY,
                image_url=image,
                starts_at=now + timedelta(days=9) if kind == "webinar" else None,
                duration_minutes=60 if kind == "webinar" else None,
                time_zone="Europe/London" if kind == "webinar" else "",
                join_url="https://meet.example/pain-clinic" if kind == "webinar" else "",
            )
            ids.append(notices.create_notice(session, draft, source="cli", now=now))
        session.commit()
    return ids


def create_campaign(app: Any, notice_ids: list[int]) -> int:
    from mailer import campaigns

    with app.extensions["mailer.sessionmaker"]() as session:
        campaign_id = campaigns.create_campaign(
            session,
            subject=SUBJECT,
            notice_ids=notice_ids,
            intro="Five new pieces this week, picked for you.",
            now=datetime.now(UTC),
        )
        session.commit()
    return campaign_id


TOPIC_ROWS = """
INSERT INTO subscriber_topic (subscriber_id, topic)
SELECT s.id, t.topic FROM subscriber s
CROSS JOIN (SELECT 'article' AS topic UNION ALL SELECT 'video' UNION ALL SELECT 'webinar') t
WHERE s.id > {after}
"""


def grow_pg(db: psycopg.Connection, total: int) -> float:
    """Confirmed subscribers of every topic, up to `total` in all; return the seconds it took."""
    started = clock()
    have = db.execute("SELECT count(*), coalesce(max(id), 0) FROM subscriber").fetchone()
    assert have is not None
    count, last_id = have
    if count >= total:
        return 0.0
    with db.transaction():
        db.execute("SET LOCAL synchronous_commit = off")
        db.execute(
            """
            INSERT INTO subscriber
                (email, name, status, created_at, last_signup_at, confirmed_at, time_zone)
            SELECT 'reader-' || n || '@example.com', '', 'confirmed', now(), now(), now(), ''
            FROM generate_series(%s::int, %s::int) AS n
            """,
            (count + 1, total),
        )
        db.execute(TOPIC_ROWS.format(after=int(last_id)))
    db.execute("ANALYZE subscriber")
    db.execute("ANALYZE subscriber_topic")
    return clock() - started


def grow_sqlite(app: Any, total: int) -> None:
    from mailer.models import Subscriber

    now = datetime.now(UTC)
    with app.extensions["mailer.sessionmaker"]() as session:
        count = session.scalar(text("SELECT count(*) FROM subscriber")) or 0
        last_id = session.scalar(text("SELECT coalesce(max(id), 0) FROM subscriber")) or 0
        rows = [
            {
                "email": f"reader-{number}@example.com",
                "name": "",
                "status": "confirmed",
                "created_at": now,
                "last_signup_at": now,
                "confirmed_at": now,
                "time_zone": "",
            }
            for number in range(count + 1, total + 1)
        ]
        if rows:
            session.execute(insert(Subscriber), rows)
            session.execute(text(TOPIC_ROWS.format(after=int(last_id))))
        session.commit()


# --------------------------------------------------------------------------- results


@dataclass
class Run:
    """One sending phase: what the sink saw, and what it cost."""

    label: str
    recipients: int
    seconds: float  # start to the last message accepted
    sink: dict[str, Any]
    sender_cpu: float  # CPU seconds of the sending processes (workers or bare loops)
    sink_cpu: float
    pg_cpu: float
    busy: float  # CPU seconds the whole machine was busy
    plan_seconds: float = 0.0
    claim_ms: float = 0.0  # a claim_batch with 90 % of the list sent (see claim_cost)
    claim_plan: list[str] = field(default_factory=list)  # EXPLAIN ANALYZE of that claim

    peaks_mb: dict[str, float] = field(default_factory=dict)  # process -> VmHWM MB
    pss_peak_mb: float = 0.0
    rss_trail: list[tuple[float, float]] = field(default_factory=list)  # (share sent, MB)
    problems: list[str] = field(default_factory=list)

    @property
    def claim_indexes(self) -> list[str]:
        """The indexes the claim's plan walks (the outer UPDATE finds rows by pk_delivery)."""
        found = re.findall(r"(?:Scan using|Index Scan on) (\w+)", "\n".join(self.claim_plan))
        return list(dict.fromkeys(found))

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds if self.seconds else 0.0

    @property
    def sending_rate(self) -> float:
        """First to last message accepted: the steady part, without start-up."""
        first, last = self.sink.get("first"), self.sink.get("last")
        span = (last - first) if first is not None and last is not None else 0.0
        return (self.sink["messages"] - 1) / span if span > 0 else 0.0

    def per_message_ms(self, cpu: float) -> float:
        return 1000 * cpu / self.recipients if self.recipients else 0.0

    @property
    def bytes_per_message(self) -> float:
        return self.sink["bytes"] / self.sink["messages"] if self.sink["messages"] else 0.0

    @property
    def largest_mb(self) -> float:
        return max(self.peaks_mb.values(), default=0.0)


def check_sink(run_sink: dict[str, Any], expected: int, label: str) -> list[str]:
    problems = []
    if run_sink["messages"] != expected:
        problems.append(
            f"{label}: the sink accepted {run_sink['messages']} messages, not {expected}"
        )
    if run_sink["unique_recipients"] != expected:
        duplicates = run_sink["messages"] - run_sink["unique_recipients"]
        problems.append(
            f"{label}: {run_sink['unique_recipients']} unique recipients of {expected} "
            f"({duplicates} duplicates)"
        )
    return problems


def check_sample(sample: Path, label: str) -> list[str]:
    """The first message the sink accepted is the digest: 5 notices, text + HTML + .ics."""
    if not sample.exists():
        return [f"{label}: no message reached the sink"]
    message = message_from_bytes(sample.read_bytes(), policy=policy.default)
    problems = []
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    calendars = [
        part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"
    ]
    if message["Subject"] != SUBJECT:
        problems.append(f"{label}: subject {message['Subject']!r}")
    if plain is None or html is None or len(calendars) != 1:
        problems.append(f"{label}: the message is not text + HTML + one .ics")
    else:
        body = plain.get_content()
        missing = [title for _, title, _ in NOTICES if title not in body]
        if missing or "/preferences/" not in body:
            problems.append(f"{label}: the text lacks {missing or 'the preferences link'}")
    return problems


# --------------------------------------------------------------------------- phases


def run_limit(env: dict[str, str], campaign_id: int, total: int, work: Path) -> Run:
    """The bare loop in 2 processes, started together once both have rendered and connected."""
    label = "limit"
    with sink(work, label) as relay:
        child_env = {**env, "MAILER_SMTP_URL": f"smtp://127.0.0.1:{relay.port}"}
        halves = (total // 2, total - total // 2)
        senders = []
        for first, count in ((0, halves[0]), (halves[0], halves[1])):
            senders.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "bare_campaign.py"),
                        *(str(campaign_id), str(first), str(count)),
                    ],
                    cwd=ROOT,
                    env=child_env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )
        try:
            for sender in senders:
                assert sender.stdout is not None
                if sender.stdout.readline().strip() != "ready":
                    sys.exit("a bare sender failed to start (its error is above)")
            sink_before = relay.status()["cpu"]
            busy_before, pg_before = machine_busy(), pg_backends()
            cpu_before = [proc_cpu(sender.pid) for sender in senders]
            started = clock()
            for sender in senders:
                assert sender.stdin is not None
                sender.stdin.write("go\n")
                sender.stdin.flush()
            results = []
            for sender in senders:
                out, _ = sender.communicate(timeout=60 + total / 50)
                if sender.returncode != 0:
                    sys.exit(f"a bare sender exited with {sender.returncode}")
                results.append(json.loads(out.strip().splitlines()[-1]))
            busy_after, pg_after = machine_busy(), pg_backends()
            time.sleep(0.3)  # the sink's status file is rewritten every 0.2 s
            final = relay.status()
        finally:
            for sender in senders:
                if sender.poll() is None:
                    stop_process(sender, timeout=5)
    return Run(
        label="limit: bare loop, 2 processes",
        recipients=total,
        seconds=(final["last"] or started) - started,
        sink=final,
        sender_cpu=sum(result["cpu"] for result in results) - sum(cpu_before),
        sink_cpu=final["cpu"] - sink_before,
        pg_cpu=sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items()),
        busy=busy_after - busy_before,
        problems=check_sink(final, total, label) + check_sample(relay.sample_file, label),
    )


def run_campaign(
    label: str,
    app: Any,
    env: dict[str, str],
    notice_ids: list[int],
    expected: int,
    work: Path,
) -> Run:
    """A real campaign: `start` to the last message accepted, with 2 worker processes."""
    from mailer import campaigns
    from mailer.jobs import get_jobs

    factory = app.extensions["mailer.sessionmaker"]
    campaign_id = create_campaign(app, notice_ids)
    name = label.split(":")[0].replace(" ", "-")
    with (
        sink(work, name) as relay,
        worker({**env, "MAILER_SMTP_URL": f"smtp://127.0.0.1:{relay.port}"}, work, name) as running,
    ):
        running.sample()
        cpu_before, sink_before = running.cpu(), relay.status()["cpu"]
        busy_before, pg_before = machine_busy(), pg_backends()
        started = clock()
        with app.app_context():
            with factory() as session:
                planned = campaigns.start_campaign(session, campaign_id, now=datetime.now(UTC))
                session.commit()
            plan_seconds = clock() - started
            get_jobs().start_sending(campaign_id)
        trail, status = watch(relay, running, factory, campaign_id, planned, label)
        cpu_after, busy_after, pg_after = running.cpu(), machine_busy(), pg_backends()
        running.sample()
        peaks = dict(running.peaks)
        pss_peak = running.pss_peak
        main_pid = running.process.pid
        time.sleep(0.3)
        final = relay.status()
    with factory() as session:
        counts = dict(
            session.execute(
                text(
                    "SELECT status, count(*) FROM delivery WHERE campaign_id = :c GROUP BY status"
                ),
                {"c": campaign_id},
            ).all()
        )
    claim_ms, claim_plan = claim_cost(factory, campaign_id)
    problems = check_sink(final, expected, label) + check_sample(relay.sample_file, label)
    if planned != expected or counts != {"sent": expected} or status != "finished":
        problems.append(
            f"{label}: {planned} deliveries planned for {expected} subscribers, "
            f"rows by status {counts}, campaign {status}"
        )
    return Run(
        label=label,
        recipients=expected,
        seconds=(final["last"] or started) - started,
        sink=final,
        sender_cpu=sum(cpu - cpu_before.get(pid, 0.0) for pid, cpu in cpu_after.items()),
        sink_cpu=final["cpu"] - sink_before,
        pg_cpu=sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items()),
        busy=busy_after - busy_before,
        plan_seconds=plan_seconds,
        claim_ms=claim_ms,
        claim_plan=claim_plan,
        peaks_mb={
            ("main" if pid == main_pid else f"child {pid}"): kb / 1024 for pid, kb in peaks.items()
        },
        pss_peak_mb=pss_peak / 1024,
        rss_trail=trail,
        problems=problems,
    )


def claim_cost(factory: Callable[[], Any], campaign_id: int) -> tuple[float, list[str]]:
    """Milliseconds a claim_batch takes with 90 % of the list sent, and its query plan.

    Rebuilt after the run inside a transaction that is rolled back: the last
    tenth of the rows put back to queued, fresh statistics (autovacuum's
    ANALYZE runs every ~10 % of changed rows during a campaign). Each claim
    of 200 runs in a savepoint rolled back after it, so all see that state;
    the median of 7 is kept, and the last one's UPDATEs are run again under
    EXPLAIN ANALYZE for the plan (which index it walks, and over how many rows).
    """
    from mailer.sending import ledger

    statements: list[tuple[str, Any]] = []
    lease = timedelta(minutes=5)

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("UPDATE delivery SET status"):
            statements.append((statement, parameters))

    with factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            return 0.0, []  # the question is PostgreSQL's plan (SKIP LOCKED, partial index)
        total = session.scalar(
            text("SELECT count(*) FROM delivery WHERE campaign_id = :c"), {"c": campaign_id}
        )
        session.execute(
            text(
                "UPDATE delivery SET status = 'queued' WHERE campaign_id = :c AND id >= "
                "(SELECT id FROM delivery WHERE campaign_id = :c ORDER BY id LIMIT 1 OFFSET :k)"
            ),
            {"c": campaign_id, "k": int(total * 0.9)},
        )
        session.execute(text("ANALYZE delivery"))
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", capture)
        times = []
        try:
            for _ in range(8):  # the first warms up: the plan made, the pages in memory
                statements.clear()  # keep the last claim's (one or two UPDATEs)
                savepoint = session.begin_nested()
                started = clock()
                ledger.claim_batch(
                    session, campaign_id, size=200, now=datetime.now(UTC), lease=lease
                )
                times.append(clock() - started)
                savepoint.rollback()
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        plan = []
        savepoint = session.begin_nested()
        for statement, parameters in statements:
            explain = f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statement}"
            plan.extend(session.connection().exec_driver_sql(explain, parameters).scalars())
        savepoint.rollback()
        session.rollback()
    return 1000 * sorted(times[1:])[len(times[1:]) // 2], plan


def watch(
    relay: Sink,
    running: Worker,
    factory: Callable[[], Any],
    campaign_id: int,
    expected: int,
    label: str,
) -> tuple[list[tuple[float, float]], str]:
    """Sample memory until the campaign is finished and the sink has every message, or stalls.

    Returns the largest pool child's RSS at each tenth of the list, and the campaign's status.
    """
    started = clock()
    deadline = started + 120 + expected / 60  # bounded: gives up below ~60 msg/s
    trail: list[tuple[float, float]] = []
    last_count, last_change, last_print, last_query = -1, started, started, 0.0
    status = ""
    while True:
        now = clock()
        seen = relay.status()["messages"]
        memory = running.sample()
        children = [values.get("VmRSS", 0) for pid, values in memory.items()]
        share = seen / expected if expected else 1.0
        if len(trail) < 10 and share >= (len(trail) + 1) / 10:
            trail.append((share, max(children[1:] or children) / 1024))
        if seen != last_count:
            last_count, last_change = seen, now
        if now - last_query >= 1.0 or seen >= expected:
            last_query = now
            with factory() as session:
                status = session.scalar(
                    text("SELECT status FROM campaign WHERE id = :c"), {"c": campaign_id}
                )
        if status == "finished" and seen >= expected:
            return trail, status
        if status == "finished" and now - last_change > 3:
            return trail, status  # finished, but messages are missing: reported by the checks
        if now - last_change > STALL_SECONDS or now > deadline:
            print(f"  {label}: gave up after {now - started:.0f} s at {seen}/{expected}")
            return trail, status
        if now - last_print >= 15:
            last_print = now
            print(
                f"  {label}: {seen:,}/{expected:,} accepted after {now - started:.0f} s "
                f"({seen / (now - started):.0f}/s)",
                flush=True,
            )
        time.sleep(0.25)


def run_embedded(work: Path, name: str, size: int, *, rate: float) -> Run:
    """A campaign on SQLite with kombu's SQLAlchemy broker on SQLite: what `make run` uses."""
    from mailer.cli import upgrade

    lite_env = {
        **mailer_env(
            f"sqlite:///{work / f'{name}.db'}", f"sqla+sqlite:///{work / f'{name}-broker.db'}"
        ),
        "MAILER_SEND_RATE": f"{rate:g}",
    }
    upgrade(lite_env["MAILER_DATABASE_URL"])
    lite = make_app(lite_env)
    grow_sqlite(lite, size)
    label = f"{name}: SQLite + sqla broker" + (f", {rate:g}/s" if rate else "")
    try:
        return run_campaign(label, lite, lite_env, create_notices(lite), size, work)
    finally:
        lite.extensions["mailer.engine"].dispose()


@dataclass
class Plan:
    subscribers: int
    seconds: float  # the first campaign, on an empty ledger
    next_seconds: float  # the next campaign, beside the first one's rows
    rows: int
    grow_seconds: float
    problems: list[str]

    @property
    def worst(self) -> float:
        return max(self.seconds, self.next_seconds)


def run_plan(app: Any, db: psycopg.Connection, notice_ids: list[int], size: int) -> Plan:
    """start_campaign for `size` subscribers: the Delivery rows in one INSERT ... SELECT.

    Twice: on an empty ledger, then a second campaign to the same list beside
    the first one's rows, as a list's next campaign finds it (larger indexes,
    into which ix_delivery_subscriber_id's keys go between the earlier ones).
    """
    from mailer import campaigns

    grow = grow_pg(db, size)
    db.execute("TRUNCATE delivery")  # earlier phases' rows: start from an empty ledger
    factory = app.extensions["mailer.sessionmaker"]
    seconds, problems = [], []
    for _ in range(2):
        db.execute("CHECKPOINT")  # do not bill earlier writes' dirty pages to this planning
        campaign_id = create_campaign(app, notice_ids)
        with factory() as session:
            session.execute(text("SELECT 1"))  # connect before the clock starts
            started = clock()
            rows = campaigns.start_campaign(session, campaign_id, now=datetime.now(UTC))
            session.commit()
            seconds.append(clock() - started)
        found = db.execute(
            "SELECT count(*) FROM delivery WHERE campaign_id = %s", (campaign_id,)
        ).fetchone()
        stored = found[0] if found else 0
        if rows != size or stored != size:
            problems.append(
                f"planning: start returned {rows} and stored {stored} Delivery rows "
                f"for {size} subscribers"
            )
    return Plan(size, seconds[0], seconds[1], rows, grow, problems)


# Where the worker path's wall time goes, as (label, callee, caller): the cumulative
# time of `callee` (file suffix, function) when called from `caller` (None: from anywhere).
# The rows do not overlap; what they leave out is shown as "the rest".
SEND_BATCH = ("mailer/delivery.py", "send_batch")
PROFILE_ROWS = (
    ("compose: DigestRenderer.build (Composer.assemble)", ("mailer/digest.py", "build"), None),
    (
        "send: SMTPTransport.send: serialise (email generator)",
        ("email/generator.py", "flatten"),
        ("smtplib.py", "send_message"),
    ),
    (
        "send: SMTPTransport.send: wait for the relay's replies",
        ("smtplib.py", "getreply"),
        None,
    ),
    ("send: SMTPTransport.send: write to the socket", ("smtplib.py", "send"), None),
    (
        "ledger, per message: MARK_SENT (+ lease renewals)",
        ("orm/session.py", "execute"),
        SEND_BATCH,
    ),
    ("ledger, per message: COMMIT", ("orm/session.py", "commit"), SEND_BATCH),
    ("batch: claim_batch (UPDATE ... SKIP LOCKED)", ("mailer/delivery.py", "claim_batch"), None),
    ("batch: _recipients (2 SELECTs, a token each)", ("mailer/delivery.py", "_recipients"), None),
    ("batch: _record (counts, finish)", ("mailer/delivery.py", "_record"), None),
    (
        "batch: _campaign_state (pause/cancel check)",
        ("mailer/delivery.py", "_campaign_state"),
        None,
    ),
)


def profile_rows(raw: dict[tuple[str, int, str], tuple], wall: float, size: int) -> list[str]:
    """The PROFILE_ROWS of a cProfile run, in microseconds a message and shares of the wall."""

    def matches(key: tuple[str, int, str], where: tuple[str, str]) -> bool:
        return key[2] == where[1] and key[0].endswith(where[0])

    lines, covered = [], 0.0
    for label, callee, caller in PROFILE_ROWS:
        seconds = 0.0
        for key, (_, _, _, cumulative, callers) in raw.items():
            if not matches(key, callee):
                continue
            if caller is None:
                seconds += cumulative
            else:
                seconds += sum(edge[3] for who, edge in callers.items() if matches(who, caller))
        covered += seconds
        lines.append(f"  {label:56} {1e6 * seconds / size:6.0f} us/msg {seconds / wall:5.0%}")
    rest = wall - covered
    lines.append(
        f"  {'the rest (loop, session setup, ...)':56} {1e6 * rest / size:6.0f} us/msg "
        f"{rest / wall:5.0%}"
    )
    return lines


def run_profile(
    env: dict[str, str], db: psycopg.Connection, notice_ids: list[int], size: int, work: Path
) -> tuple[list[str], list[str]]:
    """The worker path in this process under cProfile: send_batch until the campaign is done."""
    from mailer import campaigns
    from mailer.sending import get_mailroom

    db.execute("TRUNCATE subscriber CASCADE")  # the profile's campaign goes to `size` only
    grow_pg(db, size)
    lines: list[str] = []
    with sink(work, "profile") as relay:
        app = make_app({**env, "MAILER_SMTP_URL": f"smtp://127.0.0.1:{relay.port}"})
        campaign_id = create_campaign(app, notice_ids)
        factory = app.extensions["mailer.sessionmaker"]
        mailroom = get_mailroom(app)
        with app.app_context():
            with factory() as session:
                campaigns.start_campaign(session, campaign_id, now=datetime.now(UTC))
                session.commit()
            profiler = cProfile.Profile()
            started = clock()
            profiler.enable()
            while True:
                outcome = mailroom.send_batch(factory, campaign_id, clock=lambda: datetime.now(UTC))
                if not outcome.more:
                    break
            profiler.disable()
            wall = clock() - started
            mailroom.close()
        time.sleep(0.3)
        final = relay.status()
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple] = stats.stats  # type: ignore[attr-defined]
    lines.append(
        f"profile: {size:,} recipients in one process under cProfile, {wall:.1f} s wall "
        f"({1e6 * wall / size:.0f} us a message; the profiler slows Python code more than waits)"
    )
    lines.extend(profile_rows(raw, wall, size))
    lines.append("  top 12 by own time:")
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:12]
    for (filename, line, function), values in ranked:
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}"
        lines.append(f"    {values[2] / wall:5.1%} {function} ({where}), {values[1]:,} calls")
    return lines, check_sink(final, size, "profile")


# --------------------------------------------------------------------------- report


def code_state() -> str:
    """Which code was measured: HEAD and the app files changed in the work tree."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.rstrip()

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--", "mailer", "worker").splitlines()
        if line
    ]
    return f"{head}" + (f" + work-tree changes in {', '.join(changed)}" if changed else "")


def machine(db: psycopg.Connection | None, broker: redis.Redis | None) -> str:
    pg = db.execute("SHOW server_version").fetchone()[0].split()[0] if db else "-"  # type: ignore[index]
    rd = broker.info("server")["redis_version"] if broker else "-"
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {pg}, Redis {rd}, "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )


def ratio_line(label: str, value: str, target: str, met: bool, of: float) -> str:
    verdict = "met" if met else "MISSED"
    return f"{label}: {value}; target {target}: {of:.2f} of the limit ({verdict})"


def report(
    runs: dict[str, Run], plan: Plan | None, profile: list[str], about: str, code: str
) -> None:
    print(f"\nCampaigns: {about}")
    now = code_state()
    print(f"code: {code}" + ("" if now == code else f"; CHANGED during the run, now {now}"))
    print(
        "worker: celery -A worker.app " + " ".join(WORKER_ARGS) + " (a main process and 2 pool "
        "children); sink: aiosmtpd in its own process; MAILER_SEND_RATE=0\n"
    )
    header = (
        f"{'':34}{'msgs':>8}{'s':>7}{'msg/s':>7}{'x limit':>8}{'steady':>7}"
        f"{'CPU ms/msg: senders':>20}{'sink':>6}{'pg':>6}{'busy':>6}{'KB/msg':>7}"
    )
    print(header)
    limit = runs.get("limit")
    if limit and not limit.rate:
        limit = None  # the bare loop sent nothing: no ratios (the checks say why)
    distinct = list({id(run): run for run in runs.values()}.values())
    for run in distinct:
        versus = f"{run.rate / limit.rate:8.2f}" if limit else f"{'-':>8}"
        pg = f"{run.per_message_ms(run.pg_cpu):6.2f}" if run.pg_cpu > 0 else f"{'-':>6}"
        print(
            f"{run.label:34}{run.recipients:8}{run.seconds:7.1f}{run.rate:7.0f}{versus}"
            f"{run.sending_rate:7.0f}{run.per_message_ms(run.sender_cpu):20.2f}"
            f"{run.per_message_ms(run.sink_cpu):6.2f}{pg}"
            f"{run.per_message_ms(run.busy):6.2f}{run.bytes_per_message / 1024:7.1f}"
        )
    print(
        "  msg/s: start to the last message accepted; steady: first to last accepted; CPU ms "
        "per message of the sending processes (workers: main + children), the sink, this "
        "database's PostgreSQL backends, and the whole machine (busy: every process, "
        f"{os.cpu_count()} cores)"
    )
    memory_runs = [run for run in distinct if run.peaks_mb]
    if memory_runs:
        print("\nworker memory, MB (peak RSS per process from VmHWM; PSS: all processes summed)")
        for run in memory_runs:
            peaks = ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(run.peaks_mb.items()))
            trail = " ".join(f"{mb:.0f}" for _, mb in run.rss_trail)
            print(f"  {run.label:32} {peaks}; PSS peak {run.pss_peak_mb:.0f}")
            print(f"  {'':32} a pool child's RSS at each tenth of the list: {trail}")

    probed = [run for run in distinct if run.claim_ms]
    if probed:
        print(
            "\nclaim_batch of 200 with 90 % of the list sent (rebuilt after the run, rolled "
            "back; median of 7): "
            + ", ".join(
                f"{run.recipients:,} rows {run.claim_ms:.1f} ms "
                f"(walks {', '.join(run.claim_indexes) or 'no index'})"
                for run in probed
            )
        )
        largest = max(probed, key=lambda run: run.recipients)
        print(f"  its plan at {largest.recipients:,} rows:")
        print("\n".join(f"    {line}" for line in largest.claim_plan))
    print("\nagainst the limits:")
    campaign = runs.get("campaign")
    if campaign and limit:
        ratio = campaign.rate / limit.rate
        print(
            "  "
            + ratio_line(
                f"throughput, {campaign.recipients:,} recipients",
                f"{campaign.rate:.0f} msg/s = {ratio:.2f}x the bare loop's {limit.rate:.0f}",
                f">= {TARGET_RATIO}x",
                ratio >= TARGET_RATIO,
                ratio / TARGET_RATIO,
            )
        )
        if campaign.sender_cpu:
            cpu_ratio = (
                limit.sender_cpu / campaign.sender_cpu * campaign.recipients / limit.recipients
            )
            print(
                f"    CPU per message, bare/worker: {cpu_ratio:.2f}x (steadier than msg/s when "
                "other processes share the cores)"
            )
    if plan:
        # The target is for 1,000,000; other sizes are held to it in proportion.
        target = TARGET_PLAN_SECONDS * plan.subscribers / PLAN_TARGET_SIZE
        prorated = "" if plan.subscribers == PLAN_TARGET_SIZE else " (prorated from 10 s for 1M)"
        print(
            "  "
            + ratio_line(
                f"planning, {plan.subscribers:,} subscribers",
                f"{plan.seconds:.2f} s on an empty ledger, {plan.next_seconds:.2f} s for the "
                f"next campaign beside it ({plan.rows:,} Delivery rows each)",
                f"< {target:.1f} s{prorated}, the slower of the two",
                plan.worst < target,
                plan.worst / target,
            )
        )
    small, large = runs.get("memory small"), runs.get("memory large") or campaign
    if large and large.peaks_mb:
        print(
            "  "
            + ratio_line(
                f"worker peak RSS, {large.recipients:,} recipients",
                f"largest process {large.largest_mb:.0f} MB (whole worker PSS "
                f"{large.pss_peak_mb:.0f} MB, {large.pss_peak_mb / TARGET_RSS_MB:.2f} of it)",
                f"< {TARGET_RSS_MB:.0f} MB",
                large.largest_mb < TARGET_RSS_MB,
                large.largest_mb / TARGET_RSS_MB,
            )
        )
    if small and large and small.peaks_mb and large.peaks_mb:
        growth = large.largest_mb / small.largest_mb
        print(
            f"  growth with the list, {small.recipients:,} -> {large.recipients:,} recipients: "
            f"largest process {small.largest_mb:.0f} -> {large.largest_mb:.0f} MB "
            f"({growth:.2f}x), PSS {small.pss_peak_mb:.0f} -> {large.pss_peak_mb:.0f} MB; "
            f"target: flat (<= {FLAT_GROWTH:.2f}x): {growth / FLAT_GROWTH:.2f} of the limit "
            f"({'met' if growth <= FLAT_GROWTH else 'MISSED'})"
        )
    embedded = runs.get("embedded")
    if embedded:
        versus = f" = {embedded.rate / limit.rate:.2f}x the bare loop" if limit else ""
        print(
            f"  embedded default, {embedded.recipients:,} recipients: {embedded.rate:.0f} msg/s"
            f"{versus} (no target; MAILER_SEND_RATE=0)"
        )
    rated = runs.get("embedded-rate")
    if rated:
        steady = rated.sending_rate
        print(
            "  "
            + ratio_line(
                f"embedded default at MAILER_SEND_RATE={EMBEDDED_RATE:.0f}, "
                f"{rated.recipients:,} recipients, 2 pool processes",
                f"{steady:.1f} msg/s first to last message ({rated.rate:.1f} from start)",
                f"<= {EMBEDDED_RATE:.0f}/s plus the burst of {EMBEDDED_RATE / 10:.0f}",
                steady <= EMBEDDED_RATE * 1.02,
                steady / EMBEDDED_RATE,
            )
        )
    if profile:
        print()
        print("\n".join(profile))


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about 3 minutes")
    parser.add_argument("--phases", default="limit,campaign,memory,plan,embedded,embedded-rate")
    parser.add_argument("--limit", type=int, help="messages of the bare loop")
    parser.add_argument("--campaign", type=int, help="recipients of the throughput campaign")
    parser.add_argument("--memory", help="SMALL,LARGE recipients of the memory campaigns")
    parser.add_argument("--plan", type=int, help="subscribers to plan deliveries for")
    parser.add_argument("--embedded", type=int, help="recipients on SQLite + sqla broker")
    parser.add_argument("--profile", type=int, default=0, help="N: profile the worker path")
    args = parser.parse_args()
    base = QUICK if args.quick else DEFAULT
    small, large = (
        (int(part) for part in args.memory.split(","))
        if args.memory
        else (base.memory_small, base.memory_large)
    )
    sizes = Sizes(
        limit=args.limit or base.limit,
        campaign=args.campaign or base.campaign,
        memory_small=small,
        memory_large=large,
        plan=args.plan or base.plan,
        embedded=args.embedded or base.embedded,
        embedded_rated=base.embedded_rated,
    )
    phases = {phase.strip() for phase in args.phases.split(",") if phase.strip()}
    if args.profile:
        phases.add("profile")
    if unknown := phases - set(PHASES):
        parser.error(f"unknown phases {', '.join(sorted(unknown))}; choose from {PHASES}")

    # Ctrl-C and SIGTERM unwind the ExitStack: processes, database and Redis are cleaned up.
    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    runs: dict[str, Run] = {}
    plan: Plan | None = None
    profile: list[str] = []
    problems: list[str] = []
    wall = clock()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailer-campaign-")))
        broker = stack.enter_context(redis_claim(REDIS_DBS, "bench-campaign", ttl=3600))
        db = stack.enter_context(fresh_database(PG_NAME))
        about, code = machine(db, broker), code_state()
        print(f"machine: {about}", flush=True)
        redis_db = broker.connection_pool.connection_kwargs["db"]
        env = mailer_env(DATABASE_URL, f"{REDIS_BASE}/{redis_db}")
        app = make_app(env)
        notice_ids = create_notices(app)

        if "limit" in phases:
            print(f"limit: bare loop, 2 processes, {sizes.limit:,} messages", flush=True)
            runs["limit"] = run_limit(env, create_campaign(app, notice_ids), sizes.limit, work)
            problems.extend(runs["limit"].problems)
            print(f"  {runs['limit'].rate:.0f} msg/s", flush=True)
        # One campaign per list size, smallest first (the subscriber table only grows);
        # the throughput campaign doubles as a memory run when the sizes coincide.
        wanted: dict[int, list[str]] = {}
        if "memory" in phases:
            wanted.setdefault(sizes.memory_small, []).append("memory small")
            wanted.setdefault(sizes.memory_large, []).append("memory large")
        if "campaign" in phases:
            wanted.setdefault(sizes.campaign, []).insert(0, "campaign")
        for size, keys in sorted(wanted.items()):
            label = f"{keys[0]}: PostgreSQL + Redis"
            grown = grow_pg(db, size)
            print(f"{label}: {size:,} subscribers ready (+{grown:.1f} s)", flush=True)
            run = run_campaign(label, app, env, notice_ids, size, work)
            run.label = label if keys[0] == "campaign" else keys[0]
            runs.update(dict.fromkeys(keys, run))
            problems.extend(run.problems)
            empty_redis(broker)
            print(
                f"  {run.rate:.0f} msg/s start to last ({run.seconds:.1f} s, planning "
                f"{run.plan_seconds:.2f} s); largest worker process {run.largest_mb:.0f} MB",
                flush=True,
            )
        if "profile" in phases:
            print(f"profile: the worker path in-process, {args.profile or 5000:,}", flush=True)
            profile, failed = run_profile(env, db, notice_ids, args.profile or 5000, work)
            problems.extend(failed)
        if "plan" in phases:
            print(f"planning: {sizes.plan:,} subscribers", flush=True)
            plan = run_plan(app, db, notice_ids, sizes.plan)
            problems.extend(plan.problems)
            print(
                f"  {plan.seconds:.2f} s for {plan.rows:,} rows, the next campaign "
                f"{plan.next_seconds:.2f} s (loading the subscribers took "
                f"{plan.grow_seconds:.0f} s, not counted)",
                flush=True,
            )
        app.extensions["mailer.engine"].dispose()
        if "embedded" in phases:
            print(f"embedded: SQLite + sqla broker, {sizes.embedded:,} recipients", flush=True)
            run = run_embedded(work, "embedded", sizes.embedded, rate=0)
            runs["embedded"] = run
            problems.extend(run.problems)
            print(f"  {run.rate:.0f} msg/s", flush=True)
        if "embedded-rate" in phases:
            print(
                f"embedded, MAILER_SEND_RATE={EMBEDDED_RATE:.0f} (make run's): "
                f"{sizes.embedded_rated:,} recipients",
                flush=True,
            )
            run = run_embedded(work, "embedded-rate", sizes.embedded_rated, rate=EMBEDDED_RATE)
            runs["embedded-rate"] = run
            problems.extend(run.problems)
            print(f"  {run.sending_rate:.1f} msg/s first to last message", flush=True)
        report(runs, plan, profile, about, code)
    print(f"\ncommand: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"took {clock() - wall:.0f} s")
    if problems:
        sys.exit("NOT VALID:\n  " + "\n  ".join(problems))
    print("checks: all passed (each message once, Delivery rows, campaign states, row counts)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as stop:
        sys.exit(f"interrupted ({stop}): processes stopped, database and Redis keys removed")
