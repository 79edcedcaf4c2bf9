"""Celery tasks. Each one loads by id, calls one domain function, commits.

Task names are mailer.jobs' constants: the web process queues by name.
"""

from __future__ import annotations

import dataclasses
import logging

from celery import shared_task
from flask import current_app

from mailer import (
    admins,
    automatic,
    campaigns,
    clock,
    db,
    feeds,
    jobs,
    mailbox,
    metrics,
    safe_http,
    site,
    subscriptions,
    timestamps,
)
from mailer.outbound_webhooks import delivery as webhook_delivery
from mailer.sending import get_mailroom, transactional
from mailer.sending.transport import TemporaryFailure

log = logging.getLogger("worker.tasks")


def _settings():
    return current_app.extensions["mailer.settings"]


def _site(session) -> site.SiteSettings:
    return current_app.extensions[site.KEY].get(session)


@shared_task(
    name=jobs.SEND_MAIL,
    bind=True,
    acks_late=True,
    max_retries=None,
    soft_time_limit=60,  # an SMTP conversation times out after MAILER_SMTP_TIMEOUT (30 s)
    time_limit=90,
)
def send_mail(self, mail_id: int) -> str:
    """Send one transactional mail; retry temporary failures with backoff and jitter."""
    session = db.get_session()
    try:
        status = get_mailroom().send_mail(
            session, mail_id, now=clock.now(), retries=self.request.retries
        )
    except TemporaryFailure as failure:
        session.commit()  # keep the attempt count and the error
        countdown = get_mailroom().retry.delay(self.request.retries)
        log.warning("mail %s: %s; retry in %.1fs", mail_id, failure, countdown)
        raise self.retry(countdown=countdown) from failure
    session.commit()
    log.info("mail %s: %s", mail_id, status)
    return status


# A batch at a low send rate takes long; its rows are leased, so a batch cut off by
# its limit goes back to the queue when the lease runs out.
@shared_task(name=jobs.SEND_BATCH, acks_late=True, soft_time_limit=900, time_limit=960)
def send_batch(campaign_id: int) -> int:
    """Send one batch of a campaign, then queue the next while rows remain."""
    outcome = get_mailroom().send_batch(db.sessions(), campaign_id, clock=clock.now)
    metrics.MAILS_SENT.labels("campaign").inc(outcome.sent)
    metrics.MAILS_FAILED.labels("campaign").inc(outcome.failed)
    for note in outcome.notes:
        log.warning("campaign %s: %s", campaign_id, note)
    if outcome.more:
        send_batch.apply_async((campaign_id,), countdown=outcome.hold_seconds)
    return outcome.sent


@shared_task(name=jobs.SEND_TEST, soft_time_limit=60, time_limit=90)
def send_test(campaign_id: int, to: str, actor: str) -> str:
    """Send one test copy of a campaign and put the relay's answer in the audit log."""
    session = db.get_session()
    result = get_mailroom().send_test(session, campaign_id, to=to, now=clock.now())
    answer = "nothing to send" if result is None else str(result.error or "sent")
    admins.audit(
        session,
        actor,
        "campaign.test",
        target=f"campaign {campaign_id}",
        detail=f"to {to}: {answer}",
        now=clock.now(),
    )
    session.commit()
    log.info("test of campaign %s to %s: %s", campaign_id, to, answer)
    return answer


@shared_task(name=jobs.PURGE_UNCONFIRMED, soft_time_limit=300, time_limit=360)
def purge_unconfirmed() -> int:
    """Delete signups that stayed unconfirmed past their link's lifetime."""
    session = db.get_session()
    purged = subscriptions.purge_unconfirmed(session, now=clock.now())
    pruned = webhook_delivery.prune(session, now=clock.now())
    session.commit()
    log.info("purged %s unconfirmed signups, %s old webhook messages", purged, pruned)
    return purged


@shared_task(name="mailer.requeue_unsent_mail", soft_time_limit=60, time_limit=90)
def requeue_unsent_mail() -> int:
    """Queue again the mails committed but never tried (their broker message was lost)."""
    mail_ids = transactional.never_tried(db.get_session(), now=clock.now())
    for mail_id in mail_ids:
        send_mail.delay(mail_id)
    return len(mail_ids)


@shared_task(name="mailer.start_due_campaigns", soft_time_limit=120, time_limit=150)
def start_due_campaigns() -> int:
    """Start scheduled campaigns whose time has come; keep sending ones going."""
    session = db.get_session()
    now = clock.now()
    due = campaigns.due_campaigns(session, now=now)
    if due and not _site(session).ready:
        # They stay scheduled and start at the first tick after an admin sets the address.
        log.warning("scheduled campaigns %s wait: %s", due, site.POSTAL_ADDRESS_MISSING)
        due = []
    for campaign_id in due:
        campaigns.start_campaign(session, campaign_id, now=now)
    session.commit()
    for campaign_id in due + campaigns.stalled_campaigns(session, now=now):
        jobs.get_jobs().start_sending(campaign_id)
    return len(due)


@shared_task(name="mailer.plan_automatic_sends", soft_time_limit=600, time_limit=660)
def plan_automatic_sends(at: str | None = None) -> int:
    """Plan what is due (as published, weekly digests, webinar reminders), then start it.

    `at` (ISO 8601) runs the tick as of that moment; the beat passes nothing.
    Commit-then-enqueue: should the worker die in between, start_due_campaigns
    picks the committed campaigns up as stalled.
    """
    session = db.get_session()
    current = _site(session)
    if not current.ready:
        # Notices wait: the first tick after the address is set sends what is due.
        log.warning("automatic sending waits: %s", site.POSTAL_ADDRESS_MISSING)
        return 0
    schedule = dataclasses.replace(
        automatic.Schedule.from_settings(_settings()), site_name=current.site_name
    )
    started = automatic.plan_due(
        session, schedule, now=timestamps.parse_iso(at) if at else clock.now()
    )
    session.commit()
    for campaign_id in started:
        jobs.get_jobs().start_sending(campaign_id)
    return len(started)


# Each feed has MAILER_FETCH_TIMEOUT for its download; the limits bound the whole round.
@shared_task(name=jobs.POLL_FEEDS, soft_time_limit=600, time_limit=660)
def poll_feeds() -> int:
    """Import new entries of every feed; a broken feed is recorded on its row, not raised."""
    policy = safe_http.Policy.from_settings(current_app.extensions["mailer.settings"])
    results = feeds.poll_all(db.sessions(), policy, clock=clock.now)
    return sum(result.imported for result in results)


@shared_task(name=jobs.PROCESS_BOUNCES, soft_time_limit=600, time_limit=660)
def process_bounces() -> dict[str, int]:
    """Apply the bounce reports, complaints and mailto unsubscribes waiting in the mailbox."""
    settings = _settings()
    if not settings.bounce_mailbox:
        return {}
    try:
        counts = mailbox.process(
            settings.bounce_mailbox,
            db.sessions(),
            secret_key=settings.secret_keys,
            clock=clock.now,
        )
    except mailbox.MailboxUnavailable as error:
        log.warning("bounce mailbox unavailable: %s", error)  # the next run tries again
        return {}
    if counts:
        log.info("bounce mailbox: %s", dict(counts))
    return dict(counts)


@shared_task(name=jobs.DELIVER_WEBHOOK, acks_late=True, soft_time_limit=60, time_limit=90)
def deliver_webhook(delivery_id: int) -> str:
    """POST one webhook delivery; schedule its retry when it failed and time remains."""
    rules = webhook_delivery.Rules.from_settings(_settings())
    sent = webhook_delivery.deliver(db.sessions(), delivery_id, rules, clock=clock.now)
    if sent.retry_in is not None:
        # The row holds the schedule; this message only saves the beat a minute.
        deliver_webhook.apply_async((delivery_id,), countdown=sent.retry_in)
    return sent.outcome


@shared_task(name=jobs.REQUEUE_WEBHOOKS, soft_time_limit=60, time_limit=90)
def requeue_webhooks() -> int:
    """Queue the deliveries that are due and that no worker holds (lost task, killed worker)."""
    due = webhook_delivery.due(db.get_session(), now=clock.now())
    if due:
        log.info("requeueing %s webhook deliveries", len(due))
    jobs.get_jobs().deliver_webhooks(due)
    return len(due)
