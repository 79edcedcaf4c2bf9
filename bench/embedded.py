"""The embedded default for real use: what SQLite and the SQLite broker sustain on one machine.

Run: .venv/bin/python bench/embedded.py           (about 12 minutes on 2 cores; needs wrk)
     .venv/bin/python bench/embedded.py --quick   (about 3 minutes, smaller lists)

What `make run` starts, with a real SMTP relay in place of the outbox folder
(bench/counting_sink.py in its own process, as a small site would point
MAILER_SMTP_URL at its provider): the web exactly as the launcher runs it
(mailer.devserver.commands: gunicorn, 1 worker, 4 threads), one `celery -A
worker.app worker --concurrency 2` (the launcher's), an SQLite database and
kombu's SQLAlchemy broker on an SQLite file. No PostgreSQL, no Redis.

Each figure is printed beside the limit it is measured against: what a site
of SUPPORTED_SUBSCRIBERS readers needs (the README names that size).

- signup: POST /subscribe a second, wrk with 10 connections for 20 s, every
  check on (CSRF, time trap, per-address limits, consent and mail rows), a new
  address each time, while the worker sends every confirmation mail to the
  relay. Limit: SIGNUPS_NEEDED a second, a popular post's burst.
- planning: start_campaign's INSERT ... SELECT of one Delivery row per reader,
  at each list size. Limit: PLANNING_LIMIT seconds (the production target).
- campaign: MAILER_SEND_RATE=0, `start` to the last message the relay
  accepted, at each list size. Limit: the whole list within CAMPAIGN_HOURS.

Correctness is checked after every run (each message exactly once, every
Delivery row sent, one subscriber, consent and mail row per 302); the script
exits non-zero when a check fails. Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import campaign as campaigns_bench
import signup as signup_bench

from mailer.devserver import commands

SUPPORTED_SUBSCRIBERS = 50_000
SIGNUPS_NEEDED = 5.0  # a second: 18,000 an hour, a small site's best day many times over
PLANNING_LIMIT = 10.0  # seconds
CAMPAIGN_HOURS = 1.0
DEFAULT_SIZES = (1_000, 10_000, 50_000)
QUICK_SIZES = (1_000, 5_000)
LOAD = signup_bench.Load(connections=10, threads=2, duration=20, warmup=5)
QUICK_LOAD = signup_bench.Load(connections=10, threads=2, duration=8, warmup=2)


@dataclass(frozen=True)
class Signups:
    rate: float
    mail_rate: float  # confirmation mails sent a second, from the first POST to an empty queue
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    problems: list[str]


def embedded_env(work: Path, name: str, smtp_port: int) -> dict[str, str]:
    """The launcher's defaults (mailer.devserver), a relay instead of the outbox, no send rate."""
    env = campaigns_bench.mailer_env(
        f"sqlite:///{work / f'{name}.db'}",
        f"sqla+sqlite:///{work / f'{name}-broker.db'}",
        smtp_port,
    )
    env.update(
        {
            "MAILER_BASE_URL": "http://127.0.0.1:8000",
            "MAILER_SIGNUP_LIMIT": "1000000/hour",  # counted on every POST, never reached
        }
    )
    return env


@contextmanager
def web(env: dict[str, str], work: Path) -> Iterator[signup_bench.Server]:
    """The launcher's web process (same argv), on a free port."""
    port = campaigns_bench.free_port()
    argv = commands("127.0.0.1", str(port), work)["web"]
    log = work / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=work, env=env, stdout=out, stderr=out, start_new_session=True
        )
    server = signup_bench.Server("embedded", port, log, process.pid)
    try:
        signup_bench.wait_until_up(server, process)
        yield server
    finally:
        campaigns_bench.stop_process(process)


def sqlite_count(database: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(database, timeout=30) as db:
        return db.execute(sql, args).fetchone()[0]


def run_signups(work: Path, load: signup_bench.Load) -> Signups:
    """wrk against the launcher's web on SQLite while the worker sends the confirmations."""
    from mailer.cli import upgrade

    with campaigns_bench.sink(work, "signup") as relay:
        env = embedded_env(work, "signup", relay.port)
        upgrade(env["MAILER_DATABASE_URL"])
        database = work / "signup.db"
        with campaigns_bench.worker(env, work, "signup"), web(env, work) as server:
            cookie, form = signup_bench.fetch_form(server)
            time.sleep(signup_bench.FORM_MIN_SECONDS + 0.5)  # the time trap: a person is slower
            load_started = time.monotonic()
            signup_bench.run_wrk(server, load, load.warmup, "warm", cookie, form, work)
            before = server.worker_cpu()
            raw = signup_bench.run_wrk(server, load, load.duration, "run", cookie, form, work)
            cpu = server.worker_cpu() - before
            time.sleep(0.5)
            rows = sqlite_count(
                database, "SELECT count(*) FROM subscriber WHERE email LIKE ?", "run-%"
            )
            deadline = time.monotonic() + 300  # the worker catches up with the confirmations
            while time.monotonic() < deadline and sqlite_count(
                database, "SELECT count(*) FROM transactional_mail WHERE status = 'queued'"
            ):
                time.sleep(0.5)
            drained = time.monotonic() - load_started
        # Counted once web and worker have stopped: nothing changes under the count.
        mails = sqlite_count(database, "SELECT count(*) FROM transactional_mail")
        sent = sqlite_count(
            database, "SELECT count(*) FROM transactional_mail WHERE status = 'sent'"
        )
        accepted = relay.status()["messages"]
    problems = []
    if raw["other"] or raw["socket_errors"]:
        problems.append(f"signup: {raw['other']} non-302 answers, {raw['socket_errors']} errors")
    if not raw["ok"] <= rows <= raw["ok"] + load.connections:
        problems.append(f"signup: {rows} subscriber rows for {raw['ok']} 302s")
    if not sent == mails == accepted:
        problems.append(f"signup: {mails} mails, {sent} sent, {accepted} accepted by the relay")
    seconds = raw["duration_us"] / 1e6
    return Signups(
        rate=raw["requests"] / seconds,
        mail_rate=sent / drained,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        cpu_ms=1000 * cpu / max(1, raw["requests"]),
        problems=problems,
    )


def run_campaigns(work: Path, sizes: tuple[int, ...]) -> list[campaigns_bench.Run]:
    """One campaign per list size on one growing SQLite list, smallest first."""
    from mailer.cli import upgrade

    env = embedded_env(work, "campaign", 25)
    upgrade(env["MAILER_DATABASE_URL"])
    app = campaigns_bench.make_app(env)
    notice_ids = campaigns_bench.create_notices(app)
    runs = []
    try:
        for size in sizes:
            campaigns_bench.grow_sqlite(app, size)
            label = f"{size:,} readers"
            print(f"campaign: {label}", flush=True)
            run = campaigns_bench.run_campaign(label, app, env, notice_ids, size, work)
            print(f"  {run.rate:.0f} msg/s, planning {run.plan_seconds:.2f} s", flush=True)
            runs.append(run)
    finally:
        app.extensions["mailer.engine"].dispose()
    return runs


def verdict(ratio: float) -> str:
    return "met" if ratio >= 1 else "MISSED"


def report(signups: Signups, runs: list[campaigns_bench.Run], load: signup_bench.Load) -> None:
    print(f"\nThe embedded default: {campaigns_bench.machine(None, None)}")
    print(
        f"signup: {signups.rate:.1f}/s (p50 {signups.p50_ms:.0f} ms, p99 {signups.p99_ms:.0f} ms,"
        f" {signups.cpu_ms:.1f} ms CPU in the web process a request; wrk {load.connections}"
        f" connections, {load.duration} s); limit {SIGNUPS_NEEDED:g}/s:"
        f" {signups.rate / SIGNUPS_NEEDED:.1f}x ({verdict(signups.rate / SIGNUPS_NEEDED)})"
    )
    print(
        f"confirmation mails: {signups.mail_rate:.1f}/s sent meanwhile and after, to an empty"
        f" queue; limit {SIGNUPS_NEEDED:g}/s: {signups.mail_rate / SIGNUPS_NEEDED:.1f}x"
        f" ({verdict(signups.mail_rate / SIGNUPS_NEEDED)})"
    )
    print(
        f"\n{'readers':>9}{'planning s':>12}{'x limit':>9}"
        f"{'sent in s':>11}{'msg/s':>8}{'x limit':>9}"
    )
    for run in runs:
        plan_ratio = PLANNING_LIMIT / run.plan_seconds if run.plan_seconds else float("inf")
        needed = run.recipients / (CAMPAIGN_HOURS * 3600)
        print(
            f"{run.recipients:>9,}{run.plan_seconds:>12.2f}{plan_ratio:>8.1f}x"
            f"{run.seconds:>11.1f}{run.rate:>8.0f}{run.rate / needed:>8.1f}x"
        )
    print(
        f"\nlimits: planning within {PLANNING_LIMIT:g} s; the whole list sent within "
        f"{CAMPAIGN_HOURS:g} h (readers / {CAMPAIGN_HOURS * 3600:.0f} msg/s); x limit > 1 is met."
    )
    largest = max(runs, key=lambda run: run.recipients)
    hours = SUPPORTED_SUBSCRIBERS / largest.rate / 3600 if largest.rate else float("inf")
    print(
        f"at {SUPPORTED_SUBSCRIBERS:,} readers (the README's supported size) a campaign takes"
        f" about {hours * 60:.0f} minutes at {largest.recipients:,} readers' rate"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller lists, shorter load")
    parser.add_argument("--sizes", help="comma-separated list sizes, e.g. 1000,10000,50000")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    sizes = tuple(int(size) for size in args.sizes.split(",")) if args.sizes else None
    sizes = sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    load = QUICK_LOAD if args.quick else LOAD

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    started = time.monotonic()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailer-embedded-")))
        print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        print("signup: wrk against the launcher's web on SQLite", flush=True)
        signups = run_signups(work, load)
        print(f"  {signups.rate:.1f}/s", flush=True)
        runs = run_campaigns(work, sizes)
        report(signups, runs, load)
    problems = signups.problems + [problem for run in runs for problem in run.problems]
    print(f"\ncommand: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"took {time.monotonic() - started:.0f} s")
    if problems:
        sys.exit("NOT VALID:\n  " + "\n  ".join(problems))
    print("checks: all passed (each message once, Delivery rows, campaign states, row counts)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as stop:
        sys.exit(f"interrupted ({stop}): processes stopped")
