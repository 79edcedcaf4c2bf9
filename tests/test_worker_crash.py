"""A worker killed with SIGKILL mid-campaign loses nothing; a relay that goes away and back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from mailer import campaigns, clock, notices
from mailer.jobs import get_jobs
from mailer.models import Campaign, Delivery
from tests.conftest import running_worker
from tests.helpers import add_confirmed, settings_env, wait_until
from tests.smtp_sink import start_sink
from worker import tasks

CELERY = str(Path(sys.executable).parent / "celery")


def _campaign(app, session, recipients: int) -> int:
    for number in range(recipients):
        add_confirmed(session, f"r{number}@example.org")
    notice_id = notices.create_notice(
        session,
        notices.NoticeDraft(kind="article", title="New", url="https://site.example/a"),
        source="cli",
        now=clock.now(),
    )
    campaign_id = campaigns.create_campaign(
        session, subject="News", notice_ids=[notice_id], now=clock.now()
    )
    campaigns.start_campaign(session, campaign_id, now=clock.now())
    session.commit()
    return campaign_id


def _finished(session, campaign_id: int) -> None:
    def done() -> bool:
        session.expire_all()
        return session.scalar(select(Campaign.status).where(Campaign.id == campaign_id)) == (
            "finished"
        )

    wait_until(done, timeout=90)


def test_worker_killed_mid_campaign_loses_nothing(make_app, session, inbox):
    app = make_app(send_rate=80, lease_seconds=2, relay_hold=0.3)
    campaign_id = _campaign(app, session, 300)
    doomed = subprocess.Popen(
        [
            CELERY,
            "-A",
            "worker.app",
            "worker",
            "--pool",
            "solo",
            "--queues",
            "bulk",
            "--hostname",
            f"doomed-{os.getpid()}@%h",
            "--loglevel",
            "WARNING",
        ],
        env=settings_env(app.extensions["mailer.settings"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with app.app_context():
            tasks.send_batch.delay(campaign_id)  # one chain, all in the doomed worker
        wait_until(lambda: len(inbox.messages) >= 60, timeout=60)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    at_kill = len(inbox.messages)
    assert at_kill < 300  # killed mid-campaign, with a batch claimed and leased

    time.sleep(2.5)  # the dead worker's lease runs out
    with running_worker(app), app.app_context():
        # The beat's sweep finds a sending campaign that nobody works on.
        assert campaigns.stalled_campaigns(session, now=clock.now()) == [campaign_id]
        tasks.start_due_campaigns.apply()
        _finished(session, campaign_id)

    recipients = [item.rcpt_tos[0] for item in inbox.messages]
    assert set(recipients) == {f"r{number}@example.org" for number in range(300)}
    assert len(recipients) - len(set(recipients)) <= 1  # at most the message in flight
    statuses = set(session.scalars(select(Delivery.status)))
    assert statuses == {"sent"}


def test_relay_down_for_a_while_then_everyone_gets_one_mail(make_app, smtp, session):
    from tests.helpers import free_port

    port = free_port()
    inbox, controller = start_sink(port)
    app = make_app(smtp_url=f"smtp://127.0.0.1:{port}", send_rate=100, relay_hold=0.5)
    campaign_id = _campaign(app, session, 200)
    try:
        with running_worker(app):
            with app.app_context():
                get_jobs().start_sending(campaign_id)
            wait_until(lambda: len(inbox.messages) >= 40)
            controller.stop()  # the relay goes away mid-campaign
            down_at = len(inbox.messages)
            time.sleep(3)
            session.expire_all()
            assert (
                session.scalar(select(Delivery.id).where(Delivery.status == "failed").limit(1))
                is None
            )
            inbox2, controller = start_sink(port)  # and comes back on the same port
            _finished(session, campaign_id)
    finally:
        controller.stop()
    recipients = [item.rcpt_tos[0] for item in inbox.messages + inbox2.messages]
    assert down_at < 200
    assert sorted(set(recipients)) == sorted(f"r{number}@example.org" for number in range(200))
    assert len(recipients) - len(set(recipients)) <= 2  # at most those in flight at the cut
