"""Celery bound to the Flask app: every task runs inside an app context."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from worker.schedule import beat_schedule

QUEUES = ("transactional", "bulk", "housekeeping")


def _transport_options(broker_url: str) -> dict[str, Any]:
    if broker_url.startswith("sqla+"):
        # kombu hands these to create_engine: wait for SQLite's write lock.
        return {"connect_args": {"timeout": 30}}
    # Redis re-delivers an unacknowledged message after this long; it must
    # exceed the longest retry countdown, or a waiting retry runs twice.
    return {"visibility_timeout": 6 * 3600}


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app for `app`, configured for mail that must not be lost."""
    settings = app.extensions["mailer.settings"]

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():  # gives tasks get_session() and the transport
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        # A killed worker's message is delivered again; the mail's status row
        # makes that harmless (a sent mail is not sent twice).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=_transport_options(settings.broker_url),
        task_default_queue="transactional",
        # Confirmation mail must not wait behind a campaign, a slow feed or a full
        # bounce mailbox: each kind of work has its own queue, and the Procfile its
        # own worker for housekeeping (QUEUES).
        task_routes={
            "mailer.send_batch": {"queue": "bulk"},
            "mailer.poll_feeds": {"queue": "housekeeping"},
            "mailer.process_bounces": {"queue": "housekeeping"},
            "mailer.purge_unconfirmed": {"queue": "housekeeping"},
        },
        # A backstop for any task without limits of its own (each in worker.tasks has them).
        task_soft_time_limit=600,
        task_time_limit=660,
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        beat_schedule=beat_schedule(),
        timezone="UTC",
        include=["worker.tasks"],
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
