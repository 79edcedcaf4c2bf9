"""Work handed to the worker: tasks queued by name, after the caller's commit.

mailer never imports `worker`. Tasks are named here and queued with
Celery's `send_task`; the worker process registers its functions under the
same names. Every helper runs after a commit, and a broker that is down
must not turn a committed change into an error page: the rows are the
truth, and the beat finds what a lost message would have started
(requeue-unsent-mail for mails, start-due-campaigns for campaigns). So the
helpers log and return False instead of raising.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import Celery
from flask import Flask, current_app
from kombu.exceptions import OperationalError

from mailer.settings import Settings

KEY = "mailer.jobs"
SEND_MAIL = "mailer.send_mail"
SEND_BATCH = "mailer.send_batch"
SEND_TEST = "mailer.send_test"
POLL_FEEDS = "mailer.poll_feeds"
PROCESS_BOUNCES = "mailer.process_bounces"
PURGE_UNCONFIRMED = "mailer.purge_unconfirmed"
DELIVER_WEBHOOK = "mailer.deliver_webhook"
REQUEUE_WEBHOOKS = "mailer.requeue_webhooks"
# How many send_batch chains a campaign runs at once: enough to keep every
# worker process busy; the shared token bucket keeps the total rate.
CAMPAIGN_PARALLELISM = 4
# Confirmation mail must not wait behind a campaign, a slow feed or a full
# bounce mailbox: each kind of work has its own queue, and the Procfile a
# worker of its own for housekeeping, and one for outbound webhooks (a slow
# receiver must hold up nothing else).
QUEUES = ("transactional", "bulk", "housekeeping", "webhooks")
ROUTES = {
    SEND_BATCH: {"queue": "bulk"},
    POLL_FEEDS: {"queue": "housekeeping"},
    PROCESS_BOUNCES: {"queue": "housekeeping"},
    PURGE_UNCONFIRMED: {"queue": "housekeeping"},
    DELIVER_WEBHOOK: {"queue": "webhooks"},
    REQUEUE_WEBHOOKS: {"queue": "webhooks"},
}
BROKER_DOWN = (OperationalError, ConnectionError, OSError)

log = logging.getLogger("mailer.jobs")


def _transport_options(broker_url: str) -> dict[str, Any]:
    if broker_url.startswith("sqla+"):
        # kombu hands these to create_engine: wait for SQLite's write lock.
        return {"connect_args": {"timeout": 30}}
    # Redis re-delivers an unacknowledged message after this long; it must
    # exceed the longest retry countdown, or a waiting retry runs twice.
    return {"visibility_timeout": 6 * 3600}


def celery_config(settings: Settings) -> dict[str, Any]:
    """What the web process (queueing) and the worker (running) agree on."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(settings.broker_url),
        "task_ignore_result": True,
        # A killed worker's message is delivered again; the mail's status row
        # makes that harmless (a sent mail is not sent twice).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "transactional",
        "task_routes": ROUTES,
        # A backstop for any task without limits of its own (each in worker.tasks has them).
        "task_soft_time_limit": 600,
        "task_time_limit": 660,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
        },
        "timezone": "UTC",
    }


class Jobs:
    """The after-commit enqueue helper: each method says whether the task was queued."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def _queue(self, name: str, args: tuple = (), what: str = "", **options: Any) -> bool:
        try:
            self.celery.send_task(name, args, **options)
        except BROKER_DOWN:
            log.exception("broker unreachable; %s left for the beat", what or name)
            return False
        return True

    def send_mail(self, mail_id: int) -> bool:
        """Queue a transactional mail whose row is committed."""
        return self._queue(SEND_MAIL, (mail_id,), f"mail {mail_id}")

    def send_mails(self, mail_ids: Iterable[int], *, queue: str = "bulk") -> bool:
        """Queue many committed mails over one producer (an import's confirmations).

        The bulk queue by default: a big import must not hold up the
        confirmation mails of readers who sign up meanwhile.
        """
        mail_ids = list(mail_ids)
        if not mail_ids:
            return True
        try:
            with self.celery.producer_or_acquire() as producer:
                for mail_id in mail_ids:
                    self.celery.send_task(SEND_MAIL, (mail_id,), queue=queue, producer=producer)
        except BROKER_DOWN:
            log.exception("broker unreachable; %s mails left for the beat", len(mail_ids))
            return False
        return True

    def deliver_webhooks(self, delivery_ids: Iterable[int]) -> bool:
        """Queue committed webhook deliveries over one producer; the beat finds any lost."""
        delivery_ids = list(delivery_ids)
        try:
            with self.celery.producer_or_acquire() as producer:
                for delivery_id in delivery_ids:
                    self.celery.send_task(DELIVER_WEBHOOK, (delivery_id,), producer=producer)
        except BROKER_DOWN:
            log.exception(
                "broker unreachable; %s webhook deliveries left for the beat", len(delivery_ids)
            )
            return False
        return True

    def start_sending(self, campaign_id: int, *, countdown: float = 0) -> bool:
        """Queue the parallel batch chains of a campaign just started or resumed."""
        queued = True
        for _ in range(CAMPAIGN_PARALLELISM):
            queued = queued and self._queue(
                SEND_BATCH, (campaign_id,), f"campaign {campaign_id}", countdown=countdown
            )
        return queued

    def send_test(self, campaign_id: int, to: str, *, actor: str) -> bool:
        """Queue one test copy of a campaign; the worker sends it and audits the answer.

        Nothing is committed for it: if the broker is down, the caller says so
        and the person tries again.
        """
        return self._queue(SEND_TEST, (campaign_id, to, actor), f"test of campaign {campaign_id}")

    def poll_feeds(self) -> bool:
        return self._queue(POLL_FEEDS, (), "feed poll")


def init_app(app: Flask, settings: Settings) -> None:
    """A queueing-only Celery app for this process; the worker replaces it with its own."""
    celery = Celery(app.name)
    celery.conf.update(celery_config(settings))
    app.extensions[KEY] = Jobs(celery)


def get_jobs(app: Flask | None = None) -> Jobs:
    """The Jobs of `app`, or of the current app."""
    return (app or current_app).extensions[KEY]
