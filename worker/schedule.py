"""The beat schedule: housekeeping that no reader or admin triggers."""

from __future__ import annotations

from celery.schedules import crontab


def beat_schedule() -> dict[str, dict]:
    """Periodic tasks, by name."""
    return {
        "purge-unconfirmed": {"task": "mailer.purge_unconfirmed", "schedule": crontab(minute=7)},
        # Commit-then-enqueue: a mail committed while the broker blinked is
        # nudged again here, so the database row alone guarantees delivery.
        "requeue-unsent-mail": {"task": "mailer.requeue_unsent_mail", "schedule": 300.0},
        # Scheduled campaigns start here; a sending campaign whose task chain
        # was lost (a worker killed, a broker restart) is picked up again.
        "start-due-campaigns": {"task": "mailer.start_due_campaigns", "schedule": 30.0},
        # New articles, videos and webinars from the site's RSS and Atom feeds.
        "poll-feeds": {"task": "mailer.poll_feeds", "schedule": crontab(minute="*/15")},
        # Automatic sends: a publishing window closes, a time zone reaches the
        # weekly digest hour, a webinar is a day away. Idempotent, so a tick
        # delivered twice sends nothing twice.
        "plan-automatic-sends": {
            "task": "mailer.plan_automatic_sends",
            "schedule": 60.0,
            "options": {"queue": "bulk"},
        },
        # Webhook deliveries committed but not under way: their task was lost
        # with a broker that blinked, or died with a killed worker (its lease ran out).
        "requeue-webhooks": {"task": "mailer.requeue_webhooks", "schedule": 60.0},
        # Bounces, complaints and mailto unsubscribes from MAILER_BOUNCE_MAILBOX.
        "process-bounces": {"task": "mailer.process_bounces", "schedule": 300.0},
    }
