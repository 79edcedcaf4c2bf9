"""A slow feed holds up no mail: a deadline on every read, time limits on every task, and
housekeeping on a queue and worker of its own (issue 11, item 7). Feeds can be switched off
and removed; notices from plain-http feeds wait for approval."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer import clock
from mailer.models import Campaign, CampaignNotice, Feed, Notice
from tests.admin_helpers import post, signed_in
from tests.conftest import running_worker
from tests.helpers import add_confirmed, post_signup, settings_env, wait_until
from tests.security.flows import cli
from tests.security.servers import DrippingSite, Site, rss

ROOT = Path(__file__).resolve().parents[2]


def _procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            argv = shlex.split(line.partition(":")[2])
            argv[0] = str(Path(sys.executable).parent / argv[0])  # the venv's own celery
            return argv
    raise AssertionError(f"the Procfile has no {name} process")


@contextmanager
def procfile_process(app, name: str) -> Iterator[subprocess.Popen]:
    """The Procfile's `name` line, run as production runs it, against this test's services."""
    process = subprocess.Popen(
        _procfile_command(name),
        cwd=ROOT,
        env=settings_env(app.extensions["mailer.settings"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its pool's children end with it
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def dripping() -> Iterator[DrippingSite]:
    site = DrippingSite(seconds=40)
    yield site
    site.close()


def test_a_dripping_feed_is_cut_off_at_the_deadline(make_app, session, dripping):
    app = make_app(fetch_allow="127.0.0.2/32", fetch_ports=str(dripping.port), fetch_timeout=1.5)
    cli(app, "feed", "add", dripping.url(), "--kind", "article")

    polled = cli(app, "feed", "poll")

    assert polled.exit_code == 1 and "took longer than 1.5 s" in polled.output
    assert dripping.completed == 0  # the poll did not wait for the drip to end
    session.expire_all()
    assert session.scalars(select(Feed.last_error)).one() == "took longer than 1.5 s"


def test_a_confirmation_is_not_held_up_by_feed_polls(make_app, session, inbox, dripping):
    app = make_app(fetch_allow="127.0.0.2/32", fetch_ports=str(dripping.port), fetch_timeout=30)
    admin = signed_in(app)
    assert (
        post(admin, "/admin/feeds", {"url": dripping.url(), "kind": "article"}).status_code == 303
    )
    reader = app.test_client()
    with procfile_process(app, "housekeeping"), running_worker(app, ("transactional", "bulk")):
        for _ in range(2):  # "poll now", twice: each holds a worker for the whole drip
            assert post(admin, "/admin/feeds/poll").status_code == 303
        wait_until(lambda: dripping.active >= 1, timeout=60)

        post_signup(reader, app, email="ann@example.org")
        [confirmation] = inbox.wait_for("ann@example.org", timeout=20)

        assert "confirm" in str(confirmation.message["Subject"]).lower()
        assert dripping.active >= 1 and dripping.completed == 0  # the feed is still dripping


def test_every_task_has_time_limits_and_housekeeping_its_own_queue(app):
    celery = app.extensions["celery"]
    tasks = {name: task for name, task in celery.tasks.items() if name.startswith("mailer.")}
    assert len(tasks) >= 8
    for name, task in tasks.items():
        assert task.soft_time_limit and task.time_limit, name
        assert task.soft_time_limit < task.time_limit, name
    routes = celery.conf.task_routes
    for name in ("mailer.poll_feeds", "mailer.process_bounces", "mailer.purge_unconfirmed"):
        assert routes[name] == {"queue": "housekeeping"}
    worker_line = " ".join(_procfile_command("worker"))
    assert "--queues transactional,bulk" in worker_line and "housekeeping" not in worker_line
    assert "--queues housekeeping" in " ".join(_procfile_command("housekeeping"))


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site(
        "127.0.0.2",
        {"/feed.rss": (200, {"Content-Type": "application/rss+xml"}, rss("Walking", "walk-1"))},
    )
    yield server
    server.close()


def test_feeds_can_be_switched_off_and_removed(make_app, session, site):
    app = make_app(fetch_allow="127.0.0.2/32", fetch_ports=str(site.port))
    admin = signed_in(app)
    post(admin, "/admin/feeds", {"url": site.url("/feed.rss"), "kind": "article"})
    feed_id = session.scalars(select(Feed.id)).one()

    assert post(admin, f"/admin/feeds/{feed_id}/disable").status_code == 303
    assert cli(app, "feed", "poll").exit_code == 0
    assert site.hits == []  # switched off: not fetched

    assert post(admin, f"/admin/feeds/{feed_id}/enable").status_code == 303
    assert cli(app, "feed", "poll").exit_code == 0
    assert site.hits == ["/feed.rss"]
    assert post(admin, f"/admin/feeds/{feed_id}/delete").status_code == 303
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Feed)) == 0
    assert session.scalars(select(Notice.title)).all() == ["Walking"]  # its notices stay
    editor = signed_in(app, "editor", "ed@example.com")
    assert post(editor, "/admin/feeds/1/delete").status_code == 403


def test_notices_of_a_plain_http_feed_wait_for_approval(make_app, session, site):
    app = make_app(fetch_allow="127.0.0.2/32", fetch_ports=str(site.port))
    add_confirmed(session, "ann@example.org", ("article",))
    session.commit()
    admin = signed_in(app)
    post(admin, "/admin/feeds", {"url": site.url("/feed.rss"), "kind": "article"})
    assert cli(app, "feed", "poll").exit_code == 0
    notice = session.scalars(select(Notice)).one()
    assert notice.held_for_review
    assert "awaiting approval" in admin.get("/admin/notices").text

    def plan(minutes_later: float) -> int:
        from worker import tasks

        with app.app_context():
            at = (clock.now() + timedelta(minutes=minutes_later)).isoformat()
            return tasks.plan_automatic_sends.apply(args=[at]).get()

    assert plan(20) == 0  # the window passed: nothing planned, the notice is held
    assert session.scalar(select(func.count()).select_from(Campaign)) == 0

    editor = signed_in(app, "editor", "ed@example.com")
    assert post(editor, f"/admin/notices/{notice.id}/approve").status_code == 303
    assert plan(20) == 1
    session.expire_all()
    assert session.scalars(select(CampaignNotice.notice_id)).all() == [notice.id]
