"""Secrets and personal data: erasure leaves nothing (item 9), no credential or token in an
error or a log line (item 10), a signing key worth its name, rotated without breaking links
(item 11)."""

from __future__ import annotations

import hashlib
import secrets
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from email import message_from_bytes, policy
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from mailer import devserver, suppression, tokens
from mailer.cli import upgrade
from mailer.models import AuditEntry, Base, Subscriber, Suppression
from tests.admin_helpers import login, post, signed_in
from tests.conftest import PG_ADMIN, running_worker
from tests.helpers import (
    CONFIRM_LINK,
    add_confirmed,
    free_port,
    hidden,
    link,
    path_of,
    post_signup,
    run_campaign,
    settings_env,
    wait_until,
)
from tests.security.flows import ask_for_link, cli, notice, preferences_path, unsubscribe_path

ROOT = Path(__file__).resolve().parents[2]
STRONG = secrets.token_urlsafe(32)
OTHER = secrets.token_urlsafe(32)


def _everything(session) -> str:
    """Every value in every table, as one string to search for personal data."""
    session.expire_all()
    values = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            values.extend(str(value) for value in row)
    return "\n".join(values).lower()


def _mailer(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The `mailer` command, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---------------------------------------------------------------- item 9: erasure


def test_erase_from_the_console_leaves_the_address_nowhere(make_app, session, tmp_path):
    outbox = tmp_path / "outbox"
    app = make_app(smtp_url=f"outbox:{outbox}")
    reader = app.test_client()
    with running_worker(app):
        post_signup(reader, app, email="zed.person@example.org")
        mail_file = wait_until(lambda: next(iter(outbox.glob("*.eml")), None))
        mail = message_from_bytes(mail_file.read_bytes(), policy=policy.default)
        confirm = path_of(link(CONFIRM_LINK, mail))
        page = reader.get(confirm)
        reader.post(confirm, data={"csrf_token": hidden(page.text, "csrf_token")})
        wait_until(lambda: len(list(outbox.glob("*.eml"))) == 2)  # and the welcome mail
    admin = signed_in(app)
    admin.get("/admin/subscribers/export.csv?q=zed.person%40example.org").close()  # a search

    erased = post(admin, "/admin/subscribers/1/erase", {"confirm_email": "zed.person@example.org"})

    assert erased.status_code == 303
    assert "zed.person" not in _everything(session)  # the audit log's search too
    assert list(outbox.glob("*.eml")) == []  # the outbox viewer's copies went with it
    audit = session.execute(select(AuditEntry.action, AuditEntry.target)).all()
    assert ("subscriber.erase", "subscriber 1") in [tuple(row) for row in audit]


def test_erase_from_the_command_line_is_audited_without_the_address(app, session):
    add_confirmed(session, "zed.person@example.org")
    session.commit()

    erased = cli(app, "subscribers", "erase", "zed.person@example.org", "--yes")

    assert erased.exit_code == 0, erased.output
    entry = session.scalars(select(AuditEntry)).one()
    assert (entry.action, entry.target) == ("subscriber.erase", "subscriber 1")
    assert entry.actor.startswith("cli:") and "zed" not in entry.detail


def test_nobody_can_confirm_a_suppressed_address_by_hashing_a_guess(app, session, tmp_path):
    ann = add_confirmed(session, "ann@example.org")
    add_confirmed(session, "zed@example.org")
    session.commit()
    key = session.get_one(Subscriber, ann).token_key
    one_click = tokens.make_compact(
        app.extensions["mailer.settings"].secret_keys, tokens.Purpose.UNSUBSCRIBE, ann, 0, bind=key
    )
    left = app.test_client().post(f"/u/{one_click}", data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200
    assert cli(app, "subscribers", "erase", "zed@example.org", "--yes").exit_code == 0

    rows = session.scalars(select(Suppression.email_hash)).all()
    guesses = {
        hashlib.sha256(f"{name}@example.org".encode()).hexdigest() for name in ("ann", "zed")
    }
    assert len(rows) == 2 and not guesses & set(rows)
    # The erased address stays blocked all the same: an import refuses it.
    listing = tmp_path / "list.csv"
    listing.write_text("email\nzed@example.org\n")
    imported = cli(app, "subscribers", "import", str(listing))
    assert "0 imported" in imported.output and "suppressed" in imported.output


@pytest.fixture
def database_before_0010(dialect, tmp_path, pg_url):
    """A database as migration 0011 left it: suppression rows hold bare SHA-256 hashes."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        name = pg_url.rsplit("/", 1)[1] + "_before_0010"
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        url = pg_url.rsplit("/", 1)[0] + "/" + name
    upgrade(url, "0011")
    yield url
    if dialect == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_0010_keys_the_hashes_of_erased_and_known_addresses(
    database_before_0010, make_app
):
    from sqlalchemy import create_engine, text

    engine = create_engine(database_before_0010)
    with engine.begin() as connection:
        for email, kept in (("ann@example.org", True), ("zed@example.org", False)):
            connection.execute(
                text(
                    "INSERT INTO suppression (email, email_hash, reason, created_at) "
                    "VALUES (:email, :digest, :reason, CURRENT_TIMESTAMP)"
                ),
                {
                    "email": email if kept else None,
                    "digest": hashlib.sha256(email.encode()).hexdigest(),
                    "reason": "unsubscribed" if kept else "erased",
                },
            )
    engine.dispose()
    app = make_app(database_url=database_before_0010)

    migrated = cli(app, "db", "upgrade")

    assert migrated.exit_code == 0, migrated.output
    with app.extensions["mailer.sessionmaker"]() as session:
        stored = set(session.scalars(select(Suppression.email_hash)))
        assert (
            not {hashlib.sha256(f"{n}@example.org".encode()).hexdigest() for n in ("ann", "zed")}
            & stored
        )
        assert suppression.reason_for(session, "zed@example.org") == "erased"
        assert suppression.reason_for(session, "ann@example.org") == "unsubscribed"
    assert cli(app, "db", "downgrade", "0011").exit_code == 0
    assert cli(app, "db", "upgrade").exit_code == 0


# ---------------------------------------------------------------- item 10: no secrets in logs


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAILER_DATABASE_URL", "postgresql+psycopg://mailer:hunter2@db.internal:notaport/mailer"),
        ("MAILER_SMTP_URL", "ftp://relay:hunter2@smtp.example.com"),
        ("MAILER_BOUNCE_MAILBOX", "pop3://bounces:hunter2@imap.example.com/INBOX"),
        ("MAILER_BROKER_URL", "kafka://queue:hunter2@broker"),
        ("MAILER_BOUNCE_WEBHOOK_SECRET", "hunter2"),
        ("MAILER_SECRET_KEY", "hunter2"),
    ],
)
def test_a_malformed_setting_is_named_but_its_secret_never_shown(name, value, tmp_path):
    env = _environment(tmp_path) | {name: value}

    answer = _mailer("db", "upgrade", env=env)

    assert answer.returncode != 0
    assert f"{name} is malformed" in answer.stderr
    assert "hunter2" not in answer.stderr + answer.stdout


def test_the_launcher_prints_a_relays_address_without_its_password():
    line = devserver._mail_line("smtp://notices:hunter2@smtp.example.com:587")
    assert "smtp.example.com:587" in line and "hunter2" not in line


def test_the_access_log_cuts_every_link_token(app, session):
    add_confirmed(session, "ann@example.org")
    session.commit()
    port = free_port()
    env = settings_env(app.extensions["mailer.settings"]) | {"PORT": str(port)}
    argv = shlex.split(_procfile("web").replace("$PORT", str(port)))
    argv[0] = str(Path(sys.executable).parent / argv[0])
    argv[argv.index("--workers") + 1] = "1"
    server = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    tokens_sent = ["Im1pbmUtb25seS1vbmUi.aGVsbG8.c2lnbmF0dXJl", "1-0-abcdefghijklmnop"]
    try:
        wait_until(lambda: _fetch(f"http://127.0.0.1:{port}/healthz") == 200, timeout=30)
        for path in (
            f"/confirm/{tokens_sent[0]}",
            f"/preferences/{tokens_sent[0]}/data.json",
            f"/u/{tokens_sent[1]}",
            f"/not-me/{tokens_sent[0]}",
        ):
            _fetch(
                f"http://127.0.0.1:{port}{path}",
                referer=f"http://x/change-address/{tokens_sent[0]}",
            )
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert "GET /confirm/… HTTP/1.1" in output and "GET /preferences/…/data.json" in output
    for token in tokens_sent:
        assert token not in output


def _procfile(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.partition(":")[2].strip()
    raise AssertionError(f"no {name} line in the Procfile")


def _fetch(url: str, referer: str = "") -> int:
    request = urllib.request.Request(url, headers={"Referer": referer} if referer else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


# ---------------------------------------------------------------- item 11: the signing key


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    return env | {
        "MAILER_SECRET_KEY": STRONG,
        "MAILER_BASE_URL": "https://news.example.com",
        "MAILER_FROM": "Notices <notices@example.com>",
        "MAILER_POSTAL_ADDRESS": "1 Main Street",
        "MAILER_DATABASE_URL": f"sqlite:///{tmp_path / 'mailer.db'}",
        **extra,
    }


@pytest.mark.parametrize(
    "key",
    [
        "k",
        "a" * 40,
        "abababababababababababababababab",
        "changeme-changeme-changeme-changeme",
        "your-secret-key-goes-here-0123456789",
        "super-secret-key-from-the-example-docs",
    ],
)
def test_a_weak_or_placeholder_secret_key_stops_start_up(key, tmp_path):
    answer = _mailer("db", "upgrade", env=_environment(tmp_path, MAILER_SECRET_KEY=key))
    assert answer.returncode != 0 and "MAILER_SECRET_KEY is malformed" in answer.stderr
    assert not (tmp_path / "mailer.db").exists()  # nothing ran


def test_a_random_key_starts_up(tmp_path):
    answer = _mailer("db", "upgrade", env=_environment(tmp_path))
    assert answer.returncode == 0, answer.stderr


def test_a_rotated_key_keeps_mailed_links_and_sessions_until_the_old_one_goes(
    make_app, session, inbox
):
    before = make_app(secret_key=STRONG, send_rate=0, relay_hold=0.3)
    add_confirmed(session, "ann@example.org", ("article",))
    session.commit()
    console = signed_in(before)
    with running_worker(before):
        run_campaign(before, session, [notice(session)])
        [digest] = inbox.wait_for("ann@example.org")
        ask_for_link(before.test_client(), "ann@example.org")
        link_mail = inbox.wait_for("ann@example.org", count=2)[1]
    preferences, one_click = preferences_path(link_mail), unsubscribe_path(digest)

    during = make_app(secret_key=OTHER, secret_key_old=STRONG)
    client = during.test_client()
    client.set_cookie("session", console.get_cookie("session").value)
    assert client.get(preferences).status_code == 200
    assert client.get(one_click).status_code == 200
    assert client.get("/admin/").status_code == 200  # still logged in

    after = make_app(secret_key=OTHER)
    stale = after.test_client()
    stale.set_cookie("session", console.get_cookie("session").value)
    assert stale.get(preferences).status_code == 400
    assert stale.get(one_click).status_code == 400
    assert stale.get("/admin/").status_code == 302
    assert login(after.test_client()).status_code == 302  # a new login works, of course
