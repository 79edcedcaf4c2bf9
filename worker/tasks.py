"""Celery tasks. Each one loads by id, calls one domain function, commits."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from celery import shared_task
from flask import current_app
from kombu.exceptions import OperationalError

from mailer import (
    automatic,
    campaigns,
    clock,
    db,
    delivery,
    feeds,
    mailbox,
    mailing,
    safe_http,
    subscriptions,
)
from mailer.digest import DigestRenderer
from mailer.transport import TemporaryFailure

log = logging.getLogger("worker.tasks")


@shared_task(
    name="mailer.send_mail",
    bind=True,
    acks_late=True,
    max_retries=None,
    soft_time_limit=60,  # an SMTP conversation times out after MAILER_SMTP_TIMEOUT (30 s)
    time_limit=90,
)
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
        # Not a secret, only a spread: any PRNG does.
        countdown = random.uniform(  # noqa: S311
            0, min(3600, settings.retry_backoff * 2**self.request.retries)
        )
        log.warning("mail %s: %s; retry in %.1fs", mail_id, failure, countdown)
        raise self.retry(countdown=countdown) from failure
    session.commit()
    log.info("mail %s: %s", mail_id, status)
    return status


def enqueue_imported(mail_ids: list[int]) -> None:
    """Queue an import's confirmation mails (their rows committed) on the bulk queue.

    A big import must not hold up the confirmation mails of readers who sign
    up meanwhile, which travel on the transactional queue. One producer for
    the lot: a connection from the pool for each message costs a fifth more.
    """
    if not mail_ids:
        return
    try:
        with current_app.extensions["celery"].producer_or_acquire() as producer:
            for mail_id in mail_ids:
                send_mail.apply_async((mail_id,), queue="bulk", producer=producer)
    except OperationalError:
        # The rows are committed; the beat's requeue task sends them once the broker is back.
        log.exception(
            "broker unreachable; %s import mails left for the requeue task", len(mail_ids)
        )


@shared_task(name="mailer.purge_unconfirmed", soft_time_limit=300, time_limit=360)
def purge_unconfirmed() -> int:
    """Delete signups that stayed unconfirmed past their link's lifetime."""
    session = db.get_session()
    purged = subscriptions.purge_unconfirmed(session, now=clock.now())
    session.commit()
    log.info("purged %s unconfirmed signups", purged)
    return purged


@shared_task(name="mailer.requeue_unsent_mail", soft_time_limit=60, time_limit=90)
def requeue_unsent_mail() -> int:
    """Queue again the mails committed but never tried (their broker message was lost)."""
    mail_ids = mailing.never_tried(db.get_session(), now=clock.now())
    for mail_id in mail_ids:
        send_mail.delay(mail_id)
    return len(mail_ids)


# How many send_batch chains a campaign runs at once: enough to keep every
# worker process busy; the shared token bucket keeps the total rate.
CAMPAIGN_PARALLELISM = 4


def _renderer(campaign_id: int) -> DigestRenderer:
    cache = current_app.extensions["mailer.renderers"]
    with current_app.extensions["mailer.sessionmaker"]() as session:
        # A weekly digest gains notices as later time zones come due: new count, new renderer.
        key = (campaign_id, automatic.notice_count(session, campaign_id))
        if key not in cache:
            settings = current_app.extensions["mailer.settings"]
            composer = current_app.extensions["mailer.composer"]
            cache[key] = delivery.load_renderer(
                session, campaign_id, composer, site_time_zone=settings.site_time_zone
            )
    while len(cache) > 8:  # a long-lived worker sees many campaigns
        cache.pop(next(iter(cache)))
    return cache[key]


# A batch at a low send rate takes long; its rows are leased, so a batch cut off by
# its limit goes back to the queue when the lease runs out.
@shared_task(name="mailer.send_batch", acks_late=True, soft_time_limit=900, time_limit=960)
def send_batch(campaign_id: int) -> int:
    """Send one batch of a campaign, then queue the next while rows remain."""
    settings = current_app.extensions["mailer.settings"]
    outcome = delivery.send_batch(
        current_app.extensions["mailer.sessionmaker"],
        campaign_id,
        transport=current_app.extensions["mailer.transport"],
        renderer=_renderer(campaign_id),
        links=current_app.extensions["mailer.links"],
        bucket=current_app.extensions["mailer.bucket"],
        breaker=current_app.extensions["mailer.breaker"],
        settings=delivery.BatchSettings(
            max_attempts=settings.retry_max + 1,
            relay_hold=timedelta(seconds=settings.relay_hold),
            lease=timedelta(seconds=settings.lease_seconds),
            throttle_hold=timedelta(seconds=settings.throttle_hold),
        ),
        clock=clock.now,
    )
    for note in outcome.notes:
        log.warning("campaign %s: %s", campaign_id, note)
    if outcome.more:
        send_batch.apply_async((campaign_id,), countdown=outcome.hold_seconds)
    return outcome.sent


def start_sending(campaign_id: int) -> None:
    """Queue the parallel batch chains of a campaign just started or resumed (after commit)."""
    for _ in range(CAMPAIGN_PARALLELISM):
        send_batch.delay(campaign_id)


@shared_task(name="mailer.start_due_campaigns", soft_time_limit=120, time_limit=150)
def start_due_campaigns() -> int:
    """Start scheduled campaigns whose time has come; keep sending ones going."""
    session = db.get_session()
    now = clock.now()
    due = campaigns.due_campaigns(session, now=now)
    for campaign_id in due:
        campaigns.start_campaign(session, campaign_id, now=now)
    session.commit()
    for campaign_id in due + campaigns.stalled_campaigns(session, now=now):
        start_sending(campaign_id)
    return len(due)


@shared_task(name="mailer.plan_automatic_sends", soft_time_limit=600, time_limit=660)
def plan_automatic_sends(at: str | None = None) -> int:
    """Plan what is due (as published, weekly digests, webinar reminders), then start it.

    `at` (ISO 8601) runs the tick as of that moment; the beat passes nothing.
    Commit-then-enqueue: should the worker die in between, start_due_campaigns
    picks the committed campaigns up as stalled.
    """
    settings = current_app.extensions["mailer.settings"]
    session = db.get_session()
    started = automatic.plan_due(
        session,
        automatic.Schedule.from_settings(settings),
        now=datetime.fromisoformat(at) if at else clock.now(),
    )
    session.commit()
    for campaign_id in started:
        start_sending(campaign_id)
    return len(started)


# Each feed has MAILER_FETCH_TIMEOUT for its download; the limits bound the whole round.
@shared_task(name="mailer.poll_feeds", soft_time_limit=600, time_limit=660)
def poll_feeds() -> int:
    """Import new entries of every feed; a broken feed is recorded on its row, not raised."""
    results = feeds.poll_all(
        current_app.extensions["mailer.sessionmaker"],
        safe_http.Policy.from_settings(current_app.extensions["mailer.settings"]),
        clock=clock.now,
    )
    return sum(result.imported for result in results)


@shared_task(name="mailer.process_bounces", soft_time_limit=600, time_limit=660)
def process_bounces() -> dict[str, int]:
    """Apply the bounce reports, complaints and mailto unsubscribes waiting in the mailbox."""
    settings = current_app.extensions["mailer.settings"]
    if not settings.bounce_mailbox:
        return {}
    try:
        counts = mailbox.process(
            settings.bounce_mailbox,
            current_app.extensions["mailer.sessionmaker"],
            secret_key=settings.secret_keys,
            clock=clock.now,
        )
    except mailbox.MailboxUnavailable as error:
        log.warning("bounce mailbox unavailable: %s", error)  # the next run tries again
        return {}
    if counts:
        log.info("bounce mailbox: %s", dict(counts))
    return dict(counts)
