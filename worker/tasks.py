"""Celery tasks. Each one loads by id, calls one domain function, commits."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from flask import current_app

from mailer import clock, db, mailing, subscriptions
from mailer.transport import TemporaryFailure

log = logging.getLogger("worker.tasks")


@shared_task(name="mailer.send_mail", bind=True, acks_late=True, max_retries=None)
def send_mail(self, mail_id: int) -> str:
    """Send one transactional mail; retry temporary failures with backoff and jitter."""
    settings = current_app.extensions["mailer.settings"]
    session = db.get_session()
    try:
        status = mailing.send_transactional(
            session,
            mail_id,
            transport=current_app.extensions["mailer.transport"],
            composer=current_app.extensions["mailer.composer"],
            links=current_app.extensions["mailer.links"],
            now=clock.now(),
            final_attempt=self.request.retries >= settings.retry_max,
        )
    except TemporaryFailure as failure:
        session.commit()  # keep the attempt count and the error
        # Exponential backoff with full jitter: a relay that throttled many
        # mails at once is not hit again by all of them at the same moment.
        countdown = random.uniform(0, min(3600, settings.retry_backoff * 2**self.request.retries))
        log.warning("mail %s: %s; retry in %.1fs", mail_id, failure, countdown)
        raise self.retry(countdown=countdown) from failure
    session.commit()
    log.info("mail %s: %s", mail_id, status)
    return status


@shared_task(name="mailer.purge_unconfirmed")
def purge_unconfirmed() -> int:
    """Delete signups that stayed unconfirmed past their link's lifetime."""
    session = db.get_session()
    purged = subscriptions.purge_unconfirmed(session, now=clock.now())
    session.commit()
    log.info("purged %s unconfirmed signups", purged)
    return purged


@shared_task(name="mailer.requeue_unsent_mail")
def requeue_unsent_mail() -> int:
    """Queue again the mails committed but never tried (their broker message was lost)."""
    mail_ids = mailing.never_tried(db.get_session(), now=clock.now())
    for mail_id in mail_ids:
        send_mail.delay(mail_id)
    return len(mail_ids)
