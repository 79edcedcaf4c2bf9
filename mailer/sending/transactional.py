"""Sending the transactional mails: confirmation, already-subscribed, welcome."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.errors import MessageError

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import metrics, tokens
from mailer.models import Consent, MailKind, MailStatus, Subscriber, TransactionalMail
from mailer.sending.compose import Composer
from mailer.sending.links import LinkMaker
from mailer.sending.transport import PermanentFailure, Transport
from mailer.site import SiteSettings

SUBJECTS = {
    MailKind.CONFIRM: "Please confirm your subscription to {site}",
    MailKind.ALREADY_SUBSCRIBED: "You are already subscribed to {site}",
    MailKind.WELCOME: "Welcome to {site}",
    MailKind.ADDRESS_CHANGE: "Please confirm your new address for {site}",
    MailKind.PREFERENCES_LINK: "Your preferences link for {site}",
    MailKind.ADDRESS_CHANGED: "Your subscription to {site} moved to a new address",
}


def _context(
    session: Session, mail: TransactionalMail, subscriber: Subscriber, links: LinkMaker
) -> dict[str, object]:
    key = subscriber.token_key
    if mail.kind == MailKind.CONFIRM:
        # The confirmation names the topics asked for, but nothing typed into
        # the form: bots use signup forms to push text into strangers' inboxes.
        consent = session.get_one(Consent, mail.consent_id)
        return {
            "confirm_url": links.url(
                "confirm", tokens.Purpose.CONFIRM, consent.id, bind=consent.token_key
            ),
            "not_me_url": links.url(
                "not-me", tokens.Purpose.NOT_ME, consent.id, bind=consent.token_key
            ),
            "topics": consent.topic_list,
        }
    if mail.kind == MailKind.ADDRESS_CHANGE:
        # Sent to the new address: its link proves the reader holds that mailbox.
        value = [subscriber.id, mail.email]
        return {
            "confirm_url": links.url(
                "change-address", tokens.Purpose.ADDRESS_CHANGE, value, bind=key
            )
        }
    if mail.kind == MailKind.ADDRESS_CHANGED:
        # Sent to the old address: whoever moved the subscription away can be undone.
        value = [subscriber.id, mail.email, subscriber.email]
        return {
            "new_address": subscriber.email,
            "undo_url": links.url("undo-address", tokens.Purpose.ADDRESS_UNDO, value, bind=key),
        }
    return {
        "name": subscriber.name,
        "topics": subscriber.topic_names,
        "preferences_url": links.url(
            "preferences", tokens.Purpose.PREFERENCES, subscriber.id, bind=key
        ),
    }


def send_transactional(
    session: Session,
    mail_id: int,
    *,
    transport: Transport,
    composer: Composer,
    links: LinkMaker,
    site: SiteSettings | None = None,
    now: datetime,
    final_attempt: bool,
) -> str:
    """Send queued mail `mail_id` and record the outcome; return its status.

    A mail that is no longer queued (already sent, or redelivered after a
    worker was lost) is left alone, so a repeated task sends nothing twice.
    Raises TemporaryFailure for the caller to retry, unless `final_attempt`.
    """
    mail = session.get(TransactionalMail, mail_id, with_for_update=True)
    if mail is None or mail.status != MailStatus.QUEUED:
        return mail.status if mail else "missing"
    subscriber = session.get(Subscriber, mail.subscriber_id) if mail.subscriber_id else None
    if subscriber is None:  # purged or cancelled before the worker got to it
        mail.status, mail.last_error = MailStatus.FAILED, "subscriber gone"
        return mail.status

    site_name = site.site_name if site else composer.defaults["site_name"]
    try:
        outgoing = composer.build(
            mail.kind,
            to=mail.email,
            subject=SUBJECTS[MailKind(mail.kind)].format(site=site_name),
            context={
                **(site.mail_context() if site else {}),
                **_context(session, mail, subscriber, links),
            },
            sender=site.sender if site else None,
            now=now,
            headers={"Auto-Submitted": "auto-generated"},  # RFC 3834: no auto-replies, please
            return_path=links.return_path(
                tokens.Purpose.BOUNCE_MAIL, mail.id, bind=tokens.mail_binding(mail.kind, mail.email)
            ),
        )
    except (ValueError, MessageError) as error:  # a mail that cannot be built never will be
        mail.status, mail.last_error = MailStatus.FAILED, f"cannot compose: {error}"
        return mail.status
    mail.attempts += 1
    mail.message_id = str(outgoing.message["Message-ID"])
    [result] = transport.send([outgoing])
    if result.error is None:
        mail.status, mail.sent_at, mail.last_error = MailStatus.SENT, now, ""
        metrics.MAILS_SENT.labels("transactional").inc()
    elif isinstance(result.error, PermanentFailure) or final_attempt:
        mail.status, mail.last_error = MailStatus.FAILED, str(result.error)
        metrics.MAILS_FAILED.labels("transactional").inc()
    else:
        mail.last_error = str(result.error)
        raise result.error
    return mail.status


def never_tried(session: Session, *, now: datetime) -> list[int]:
    """Queued mails that no worker has tried for ten minutes: their task never arrived."""
    return list(
        session.scalars(
            select(TransactionalMail.id).where(
                TransactionalMail.status == MailStatus.QUEUED,
                TransactionalMail.attempts == 0,
                TransactionalMail.created_at < now - timedelta(minutes=10),
                TransactionalMail.created_at > now - timedelta(days=1),
            )
        )
    )
