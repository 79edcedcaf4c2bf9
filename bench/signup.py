"""Signup POST under load: the real view with every check on, beside a bare handler.

Measures requests/s, p50 and p99 latency of POST /subscribe for two apps under
the same gunicorn settings on PostgreSQL + Redis, loaded by wrk from a second
process over 127.0.0.1, in one run:

- full: `mailer:create_app()` with every check on: Flask-WTF CSRF (session
  cookie + token), form validation (email-validator, name, topics), honeypot,
  the signed time stamp (3 s time trap: the form is fetched > 3 s before the
  first POST), the per-IP limit in Redis, the per-address limits, the consent
  record and the mail row in PostgreSQL, and the Celery enqueue;
- bare: bench/bare_app.py, which only parses, inserts one row and enqueues.

Each POST carries a new address. Every response must be a 302 to /check-inbox,
and afterwards the rows in PostgreSQL and the tasks in Redis are counted
against those responses: a run that measured error pages or silent refusals
says so and exits non-zero. Targets (from the issue): full >= 0.5x the bare
handler's requests/s, and full p99 < 50 ms at that load. Timing is reported,
never asserted.

Run: .venv/bin/python bench/signup.py   (needs wrk: apt-get install wrk)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from services import (
    REDIS_BASE,
    database_url,
    free_port,
    fresh_database,
    redis_claim,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_NAME = "mailer_bench"
DATABASE_URL = database_url(PG_NAME)
# Redis databases the bench may take, first free one wins. They are claimed with
# the lock key the test suite uses (tests/conftest.py), so neither empties the other's.
REDIS_DBS = (14, 12, 11, 10, 9, 8)
FORM_MIN_SECONDS = 3.0  # the app's default time trap, left on
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
TOPICS = ("article", "video", "webinar")
TICKS = os.sysconf("SC_CLK_TCK")

WRK_SCRIPT = r"""
-- POST /subscribe with a new address each time; count 302s to /check-inbox.
local threads = {}
ok, other, n = 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix, fixed = args[1], args[2]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  if args[3] ~= "" then wrk.headers["Cookie"] = args[3] end
end

function request()
  n = n + 1
  local body = fixed .. "&email=" .. prefix .. "-" .. tid .. "-" .. n .. "%40example.com"
  return wrk.format(nil, "/subscribe", nil, body)
end

function response(status, headers, body)
  local location = headers["Location"] or ""
  if status == 302 and location:find("/check%-inbox$") then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local good, bad = 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("ok")
    bad = bad + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"ok": %d, "other": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, good, bad, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """wrk's settings, the same for both apps."""

    connections: int
    threads: int
    duration: int
    warmup: int


@dataclass(frozen=True)
class Result:
    """One measured wrk run, and what it left in PostgreSQL."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    ok: int
    other: int
    socket_errors: int
    rows: int
    worker_cpu: float  # CPU seconds the app's gunicorn workers used in the run
    wrk_cpu: float
    machine_busy: float  # CPU seconds the whole machine was busy in the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per request in the app's workers: steadier than req/s on a busy box."""
        return 1000 * self.worker_cpu / self.requests

    def share(self, cpu_seconds: float) -> float:
        """`cpu_seconds` as a percentage of one core over the run (2 cores: 200 %)."""
        return 100 * cpu_seconds / self.seconds


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    log: Path
    pid: int  # gunicorn's master

    def worker_cpu(self) -> float:
        """CPU seconds the workers (the master's children) have used so far (Linux /proc)."""
        master = f"/proc/{self.pid}/task/{self.pid}"
        ticks = 0
        for pid in Path(master, "children").read_text().split():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / TICKS


def machine_busy() -> float:
    """CPU seconds the machine has been busy (all cores, all processes) since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICKS  # less idle and iowait


def children_cpu() -> float:
    """CPU seconds of the child processes that have ended (here: the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def gunicorn(
    name: str, target: list[str], env: dict[str, str], workers: int, logs: Path
) -> Iterator[Server]:
    """Run `target` under gunicorn on a free loopback port until the block ends."""
    port = free_port()
    log = logs / f"{name}.log"
    command = [
        str(BIN / "gunicorn"),
        *("--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "sync"),
        *target,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    server = Server(name, port, log, process.pid)
    try:
        wait_until_up(server, process)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_up(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(server, f"gunicorn exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    fail(server, "gunicorn did not listen within 30 s")


def fail(server: Server, message: str) -> None:
    tail = server.log.read_text(errors="replace")[-3000:]
    sys.exit(f"{server.name}: {message}\n--- {server.log} (tail) ---\n{tail}")


def request(
    server: Server, method: str, path: str, body: str = "", cookie: str = ""
) -> http.client.HTTPResponse:
    """One request, redirects not followed; the caller reads the response."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    if cookie:
        headers["Cookie"] = cookie
    connection.request(method, path, body=body.encode() or None, headers=headers)
    return connection.getresponse()


def fetch_form(server: Server) -> tuple[str, str]:
    """GET / as a browser would: return the session cookie and the form's fixed fields."""
    response = request(server, "GET", "/")
    html = response.read().decode()
    if response.status != 200:
        fail(server, f"GET / answered {response.status}")
    cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]
    fields = {"form": "page", "name": "Bench Reader", "website": ""}
    for name in ("csrf_token", "stamp"):
        match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html)
        if match is None or not cookie:
            fail(server, f"GET / gave no {name} field or no session cookie")
        fields[name] = match.group(1)
    form = urllib.parse.urlencode(fields) + "".join(f"&topics={topic}" for topic in TOPICS)
    return cookie, form


def check_one(server: Server, db: psycopg.Connection, cookie: str, form: str) -> None:
    """POST one signup by hand; stop unless it is a 302 to /check-inbox that made a row."""
    email = f"{server.name}-check@example.com"
    response = request(server, "POST", "/subscribe", f"{form}&email={email}", cookie)
    body = response.read().decode(errors="replace")
    location = response.getheader("Location", "")
    if response.status != 302 or not location.endswith("/check-inbox"):
        fail(server, f"POST answered {response.status} {location}\n{body[:2000]}")
    if count(db, email) != 1:
        fail(server, "POST answered 302 but made no subscriber row (refused as spam?)")


def count(db: psycopg.Connection, pattern: str) -> int:
    row = db.execute("SELECT count(*) FROM subscriber WHERE email LIKE %s", (pattern,)).fetchone()
    return row[0] if row else 0


def run_wrk(
    server: Server, load: Load, seconds: int, prefix: str, cookie: str, form: str, work: Path
) -> dict[str, int]:
    script = work / "signup.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        *("wrk", "--threads", str(load.threads), "--connections", str(load.connections)),
        *("--duration", f"{seconds}s", "--timeout", "5s", "--script", str(script)),
        f"http://127.0.0.1:{server.port}",
        *("--", prefix, form, cookie),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^RESULT (\{.*\})$", output, re.MULTILINE)
    if match is None:
        fail(server, f"wrk printed no result:\n{output}")
    return json.loads(match.group(1))


def measure(
    server: Server, db: psycopg.Connection, load: Load, cookie: str, form: str, work: Path
) -> Result:
    """Check one POST by hand, warm up, then the measured run; count its rows."""
    check_one(server, db, cookie, form)
    run_wrk(server, load, load.warmup, f"{server.name}-warm", cookie, form, work)
    before = server.worker_cpu(), children_cpu(), machine_busy()
    raw = run_wrk(server, load, load.duration, f"{server.name}-run", cookie, form, work)
    after = server.worker_cpu(), children_cpu(), machine_busy()
    time.sleep(0.5)  # let requests wrk left in flight finish before counting
    return Result(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        ok=raw["ok"],
        other=raw["other"],
        socket_errors=raw["socket_errors"],
        rows=count(db, f"{server.name}-run-%"),
        worker_cpu=after[0] - before[0],
        wrk_cpu=after[1] - before[1],
        machine_busy=after[2] - before[2],
    )


def consistency(
    db: psycopg.Connection, broker: redis.Redis, full: Result, bare: Result, load: Load
) -> list[str]:
    """What the runs left behind, checked against the 302s they were answered with."""
    problems = []
    for name, result in (("full", full), ("bare", bare)):
        if result.other or result.socket_errors:
            problems.append(
                f"{name}: {result.other} non-302 responses, {result.socket_errors} socket errors"
            )
        # wrk stops with up to one request per connection still in flight.
        if not result.ok <= result.rows <= result.ok + load.connections:
            problems.append(f"{name}: {result.rows} subscriber rows for {result.ok} 302s")
    checks = {
        "full: consent rows": "SELECT count(*) FROM consent",
        "full: mail rows": "SELECT count(*) FROM transactional_mail",
        "full: subscriber rows": "SELECT count(*) FROM subscriber WHERE email LIKE 'full-%'",
    }
    totals = {label: db.execute(sql).fetchone()[0] for label, sql in checks.items()}
    queued = {"full": broker.llen("transactional"), "bare": broker.llen("bench_bare")}
    bare_rows = count(db, "bare-%")
    if len(set(totals.values())) != 1 or queued["full"] != totals["full: mail rows"]:
        problems.append(f"full: {totals} but {queued['full']} tasks queued")
    if queued["bare"] != bare_rows:
        problems.append(f"bare: {bare_rows} rows but {queued['bare']} tasks queued")
    print(
        f"rows: full {totals['full: subscriber rows']} subscribers / "
        f"{totals['full: consent rows']} consents / {totals['full: mail rows']} mails, "
        f"{queued['full']} tasks queued; bare {bare_rows} rows, {queued['bare']} tasks queued "
        "(warm-up and check included)"
    )
    return problems


def versions(db: psycopg.Connection, broker: redis.Redis) -> str:
    pg = db.execute("SHOW server_version").fetchone()[0].split()[0]
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()[1]
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {pg}, "
        f"Redis {broker.info('server')['redis_version']}, wrk {wrk}, "
        f"load average before {os.getloadavg()[0]:.2f}"
    )


def report(full: Result, bare: Result, load: Load, workers: int, machine: str) -> None:
    print(
        f"\nSignup POST, gunicorn {workers} sync workers per app, wrk {load.threads} threads / "
        f"{load.connections} connections / {load.duration} s after {load.warmup} s warm-up"
    )
    print(f"machine: {machine}\n")
    print(
        f"{'':31}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'302s':>7}{'other':>6}"
        f"{'app CPU ms/req':>16}"
    )
    rows = (("full (every check)", full), ("bare (parse, insert, enqueue)", bare))
    for label, result in rows:
        print(
            f"{label:31}{result.rate:8.1f}{result.p50_ms:8.1f}{result.p99_ms:8.1f}"
            f"{result.max_ms:8.1f}{result.ok:7}{result.other + result.socket_errors:6}"
            f"{result.cpu_ms:16.2f}"
        )
    cores = 100 * (os.cpu_count() or 1)
    print(f"\nCPU in each run, of {cores} %:")
    for label, result in rows:
        rest = result.machine_busy - result.worker_cpu - result.wrk_cpu
        print(
            f"  {label.split()[0]}: machine busy {result.share(result.machine_busy):.0f} %: "
            f"app workers {result.share(result.worker_cpu):.0f} %, wrk "
            f"{result.share(result.wrk_cpu):.0f} %, PostgreSQL + Redis + any other process "
            f"{result.share(rest):.0f} %"
        )
    ratio = full.rate / bare.rate
    print(
        f"\nfull/bare req/s: {ratio:.2f}x; target >= {TARGET_RATIO}x: "
        f"{ratio / TARGET_RATIO:.2f} of the limit ({'met' if ratio >= TARGET_RATIO else 'MISSED'})"
    )
    print(
        f"full p99: {full.p99_ms:.1f} ms; target < {TARGET_P99_MS:.0f} ms: "
        f"{full.p99_ms / TARGET_P99_MS:.2f} of the limit "
        f"({'met' if full.p99_ms < TARGET_P99_MS else 'MISSED'})"
    )
    print(
        f"app CPU per request, bare/full: {bare.cpu_ms / full.cpu_ms:.2f}x "
        "(what the req/s ratio tends to when the app's workers are the bottleneck)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=20, help="measured seconds per app")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per app")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers per app")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    load = Load(args.connections, args.threads, args.duration, args.warmup)

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailer-bench-")))
        broker = stack.enter_context(redis_claim(REDIS_DBS, "bench", ttl=900))
        db = stack.enter_context(fresh_database(PG_NAME))
        machine = versions(db, broker)
        redis_db = broker.connection_pool.connection_kwargs["db"]
        env = {
            **os.environ,
            "MAILER_SECRET_KEY": "bench-signup-secret-key-of-at-least-32-characters",
            "MAILER_BASE_URL": "http://127.0.0.1",
            "MAILER_FROM": "Bench Notices <notices@example.com>",
            "MAILER_POSTAL_ADDRESS": "1 Bench Street, Testville",
            "MAILER_DATABASE_URL": DATABASE_URL,
            "MAILER_BROKER_URL": f"{REDIS_BASE}/{redis_db}",
            "MAILER_SMTP_URL": f"outbox:{work / 'outbox'}",
            "MAILER_CHECK_DELIVERABILITY": "false",
            "MAILER_SIGNUP_LIMIT": "1000000/hour",  # checked in Redis on every POST, never hit
            "MAILER_FORM_MIN_SECONDS": str(FORM_MIN_SECONDS),
            "MAILER_LOG_FORMAT": "text",
        }
        full_app = stack.enter_context(
            gunicorn("full", ["mailer:create_app()"], env, args.workers, work)
        )
        bare_app = stack.enter_context(
            gunicorn("bare", ["--pythonpath", "bench", "bare_app:app"], env, args.workers, work)
        )
        cookie, form = fetch_form(full_app)
        shown_at = time.monotonic()
        # The bare app gets the same body (its csrf_token and stamp go unread) and runs
        # first, which also lets the form age past the time trap before the full app's POSTs.
        bare = measure(bare_app, db, load, "", form, work)
        time.sleep(max(0.0, shown_at + FORM_MIN_SECONDS + 0.5 - time.monotonic()))
        full = measure(full_app, db, load, cookie, form, work)
        problems = consistency(db, broker, full, bare, load)
        report(full, bare, load, args.workers, machine)
        print(f"\ncommand: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    if problems:
        sys.exit("NOT VALID:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
