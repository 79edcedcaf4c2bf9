"""Queueing work for the worker: no import cycle, and a broker outage loses nothing.

The broker here is a redis-server of the test's own, stopped and started
again, so the outage is real: connections refused, not a mock.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import select, update

from mailer import api_tokens, clock, notices
from mailer.cli import main
from mailer.models import Campaign, Subscriber, TransactionalMail
from tests.admin_helpers import post, signed_in
from tests.conftest import running_worker
from tests.helpers import add_confirmed, free_port, post_signup, wait_until
from tests.smtp_sink import Inbox
from worker import tasks

ROOT = Path(__file__).resolve().parent.parent


def test_the_app_never_imports_the_worker() -> None:
    """create_app builds web, CLI and queueing without `worker`; the worker imports mailer."""
    probe = (
        "import sys\n"
        "from mailer import create_app\n"
        "from mailer.settings import Settings\n"
        "create_app(Settings(secret_key='probe-key-4b8d2f6a0c1e3b5d7f9a2c4e6b8d', base_url='http://x.test',"
        " sender='N <n@x.test>', postal_address='1 Street'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'worker'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


class RedisServer:
    """A redis-server process of this test's own on a free port."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory = free_port(), directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _cli(app: Flask, *args: str):
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def test_a_broker_outage_answers_no_error_after_commit_and_loses_nothing(
    make_app: Callable[..., Flask], broker: RedisServer, inbox: Inbox
) -> None:
    """Signup, the console, the API and the CLI commit and answer; the beat sends it later."""
    app = make_app(broker_url=broker.url, ratelimit_storage_url="memory://")
    sessions = app.extensions["mailer.sessionmaker"]
    with sessions() as session:
        add_confirmed(session, "reader@example.org")
        token = api_tokens.create_token(session, name="cms", now=clock.now())
        notice_id = notices.create_notice(
            session,
            notices.NoticeDraft(kind="article", title="Sleep", url="https://site.example/s"),
            source="cli",
            now=clock.now(),
        )
        session.commit()
    client = app.test_client()
    console = signed_in(app)
    _cli(app, "campaign", "create", "--subject", "First", "--notices", str(notice_id))
    _cli(app, "campaign", "create", "--subject", "Second", "--notices", str(notice_id))
    _cli(app, "campaign", "create", "--subject", "Third", "--notices", str(notice_id))

    broker.stop()
    signup = post_signup(client, app, email="new@example.org")
    assert signup.status_code == 302 and signup.location.endswith("/check-inbox")
    started = post(console, "/admin/campaigns/1/start", {}, follow_redirects=True)
    assert started.status_code == 200
    assert "sending starts within a minute" in started.get_data(as_text=True)
    cli = _cli(app, "campaign", "start", "2")
    assert cli.exit_code == 0 and "the beat starts sending within a minute" in cli.output
    api = client.post("/api/v1/campaigns/3/start", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and api.json["status"] == "sending"
    test = post(console, "/admin/campaigns/1/test", {"to": "me@example.org"}, follow_redirects=True)
    assert "the task queue is unreachable; try again" in test.get_data(as_text=True)

    with sessions() as session:  # everything committed, nothing sent yet
        [mail] = session.scalars(select(TransactionalMail)).all()
        assert (mail.email, mail.status, mail.attempts) == ("new@example.org", "queued", 0)
        statuses = session.scalars(select(Campaign.status).order_by(Campaign.id)).all()
        assert statuses == ["sending", "sending", "sending"]
        # The beat's requeue task takes mails no worker tried for ten minutes.
        session.execute(
            update(TransactionalMail).values(created_at=clock.now() - timedelta(minutes=11))
        )
        session.commit()
    assert inbox.messages == []

    broker.start()
    with running_worker(app), app.app_context():
        assert tasks.requeue_unsent_mail.apply().get() == 1  # what the beat runs
        tasks.start_due_campaigns.apply().get()
        inbox.wait_for("new@example.org")
        inbox.wait_for("reader@example.org", count=3)  # one mail of each campaign

        def finished() -> bool:
            with sessions() as session:
                rows = session.scalars(select(Campaign.status)).all()
                return rows == ["finished"] * 3

        wait_until(finished)
    with sessions() as session:
        new = session.scalar(select(Subscriber).where(Subscriber.email == "new@example.org"))
        assert new is not None and new.status == "pending"
    assert len(inbox.messages) == 4
