"""`make run`: web, worker and scheduler on the embedded default, stopped together by Ctrl-C.

No servers needed: SQLite under var/, kombu's SQLAlchemy transport on SQLite
as the broker, mail written to var/outbox/. Settings already in the
environment win over these defaults, so the same command can point at
PostgreSQL, Redis or a real relay.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from mailer import redact

VAR = Path("var")
HOST, PORT = os.environ.get("MAILER_HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
ADMIN_EMAIL = "admin@localhost"


def _secret_key() -> str:
    # Generated once and kept in var/, so sessions and mailed links survive restarts.
    path = VAR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    defaults = {
        "MAILER_SECRET_KEY": _secret_key(),
        "MAILER_BASE_URL": f"http://{HOST}:{PORT}",
        "MAILER_FROM": "Health Notices <notices@localhost>",
        # No postal address: readers never see a placeholder; the console's first
        # page asks for the real one, and nothing is sent until it is set.
        "MAILER_DATABASE_URL": f"sqlite:///{(VAR / 'mailer.db').resolve()}",
        "MAILER_BROKER_URL": f"sqla+sqlite:///{(VAR / 'broker.db').resolve()}",
        "MAILER_SMTP_URL": f"outbox:{(VAR / 'outbox').resolve()}",
        # No DNS for mail domains is assumed on a laptop demo; production turns it on.
        "MAILER_CHECK_DELIVERABILITY": "false",
        "MAILER_LOG_FORMAT": "text",
        # Prometheus may scrape /metrics from this machine; web and worker processes
        # write their counts under var/metrics, which every start empties.
        "MAILER_METRICS_ALLOW": "127.0.0.1/32,::1/128",
        "PROMETHEUS_MULTIPROC_DIR": str((VAR / "metrics").resolve()),
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def _first_admin(env: dict[str, str]) -> str | None:
    """Make an admin account on the first start; return its password while it still works.

    The password is kept in var/admin-password (like the secret key) so that
    every start can print the login; once it is changed, it is not printed.
    """
    from sqlalchemy.orm import Session

    from mailer import admins, clock, db

    path = VAR / "admin-password"
    engine = db.make_engine(env["MAILER_DATABASE_URL"])
    try:
        with Session(engine) as session:
            if admins.list_admins(session):
                known = path.read_text().strip() if path.exists() else ""
                return (
                    known
                    if known and admins.password_matches(session, ADMIN_EMAIL, known)
                    else None
                )
            password = path.read_text().strip() if path.exists() else secrets.token_urlsafe(15)
            admins.create_admin(session, ADMIN_EMAIL, password, "admin", clock.now())
            admins.audit(
                session, "make run", "account.create", ADMIN_EMAIL, "role admin", now=clock.now()
            )
            session.commit()
    finally:
        engine.dispose()
    path.touch(mode=0o600)
    path.write_text(password)
    return password


def _login_lines(base_url: str, password: str | None) -> str:
    more = (
        "  more accounts: .venv/bin/python -m mailer.devserver admin create EMAIL [--role admin]\n"
    )
    if password is None:
        return f"  admin console: {base_url}/admin/ (log in with your account)\n{more}"
    return (
        f"  admin console: {base_url}/admin/ (its Outbox page shows the mail)\n"
        f"  log in as:     {ADMIN_EMAIL}  password: {password}  (kept in var/admin-password)\n"
        f"{more}"
    )


def _mail_line(smtp_url: str) -> str:
    # A relay's URL may carry its password: printed without it.
    if smtp_url.startswith("outbox:"):
        return f"  mail lands in: {smtp_url.removeprefix('outbox:')}/ (one .eml a message)\n"
    return f"  mail goes to:  {redact.url(smtp_url)}\n"


def commands(host: str, port: str, var: Path) -> dict[str, list[str]]:
    """The processes' command lines (bench/embedded.py measures these very ones).

    Quiet by design: no banners, no gunicorn control socket in the home
    directory, INFO logs of what happens. Warnings and errors still show.
    """
    bin_dir = Path(sys.executable).parent
    celery = [str(bin_dir / "celery"), "--quiet", "-A", "worker.app"]

    def celery_worker(queues: str, *options: str) -> list[str]:
        return [*celery, "worker", "--loglevel", "INFO", "--queues", queues, *options]

    return {
        "web": [
            str(bin_dir / "gunicorn"),
            *("--bind", f"{host}:{port}", "--workers", "1", "--threads", "4"),
            *("--access-logfile", "-", "--no-control-socket"),
            # No link tokens in the access log.
            *("--logger-class", "mailer.access_log.TokenSafeLogger"),
            "mailer:create_app()",
        ],
        "worker": celery_worker("transactional,bulk", "--concurrency", "2"),
        # Feeds and the bounce mailbox on a worker of their own: a slow feed
        # never holds up a confirmation mail (the Procfile's housekeeping line).
        "housekeeping": celery_worker(
            "housekeeping", "--concurrency", "1", "--hostname", "housekeeping@%h"
        ),
        # Outbound webhooks too: a slow or dead receiver holds up no mail.
        "webhooks": celery_worker("webhooks", "--concurrency", "1", "--hostname", "webhooks@%h"),
        "beat": [
            *celery,
            *("beat", "--loglevel", "INFO", "--schedule", str(var / "celerybeat-schedule")),
        ],
    }


CELERY_WORKERS = {"worker", "housekeeping", "webhooks"}


def _child_environment(env: dict[str, str], name: str) -> dict[str, str]:
    if name not in CELERY_WORKERS:
        return env
    # Celery warns at length when its worker runs as root, because a root worker
    # that accepted pickled messages could be made to run anything. These accept
    # JSON only, and `make run` runs as whoever typed it (often root in a
    # container): the warning would be the first thing a newcomer reads.
    quiet = "ignore:You're running the worker with superuser privileges"
    return {**env, "PYTHONWARNINGS": ",".join(filter(None, [env.get("PYTHONWARNINGS"), quiet]))}


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def main() -> int:
    """Migrate, start the processes, print where to look, and wait for Ctrl-C."""
    VAR.mkdir(exist_ok=True)
    env = _environment()
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    if len(sys.argv) > 1:  # any `mailer` command against this setup, e.g. `admin create EMAIL`
        metrics_dir.mkdir(parents=True, exist_ok=True)
        # Our own interpreter and module; the arguments are the developer's own, no shell.
        return subprocess.call([sys.executable, "-m", "mailer.cli", *sys.argv[1:]], env=env)  # noqa: S603
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counts of processes that are gone
    metrics_dir.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "mailer.cli", "db", "upgrade"], env=env, check=True)
    password = _first_admin(env)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, on_signal)
    # The venv's own gunicorn and celery with fixed arguments (commands), no shell.
    # Each child in a process group of its own: Ctrl-C reaches only this launcher,
    # which stops them in order (SIGTERM), instead of each process printing its
    # own half-way shutdown ("Hitting Ctrl+C again ...").
    children = {
        name: subprocess.Popen(argv, env=_child_environment(env, name), process_group=0)  # noqa: S603
        for name, argv in commands(HOST, PORT, VAR).items()
    }
    time.sleep(2)
    print(
        f"\n  mailer is running: {env['MAILER_BASE_URL']}/\n"
        f"  signup page:   {env['MAILER_BASE_URL']}/\n"
        f"  embeddable:    {env['MAILER_BASE_URL']}/embed\n"
        f"{_mail_line(env['MAILER_SMTP_URL'])}"
        f"  health:        {env['MAILER_BASE_URL']}/healthz\n"
        f"  API described: {env['MAILER_BASE_URL']}/api/openapi.json\n"
        f"  metrics:       {env['MAILER_BASE_URL']}/metrics (Prometheus, from this machine)\n"
        f"{_login_lines(env['MAILER_BASE_URL'], password)}"
        "  Press Ctrl-C to stop web, workers and scheduler.\n",
        flush=True,
    )
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping the rest", flush=True)
                stopping, exit_code = True, 1
        time.sleep(0.5)
    _stop(children)
    print("mailer stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
