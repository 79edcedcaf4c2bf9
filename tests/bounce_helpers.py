"""Shared by the bounce tests: real campaigns to aiosmtpd, reports built or read from
tests/bounces/, dropped into a real Maildir and processed as the beat does."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import os
from email import message_from_bytes
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from mailer import clock, mailbox, notices
from mailer.cli import main
from mailer.models import BounceEvent, Delivery, Subscriber, Suppression
from tests.conftest import running_worker
from tests.helpers import add_confirmed, run_campaign

SECRET = "test-key-9f2c4e7a1b3d5f60-8e1a2c4b6d8f0a13"  # make_settings' secret_key
CORPUS = Path(__file__).parent / "bounces"


def send_campaign(app, session) -> int:
    """Create, start and finish a one-notice campaign with a real worker; return its id."""
    now = clock.now()
    notice_id = notices.create_notice(
        session,
        notices.NoticeDraft(
            kind="article", title="Naltrexone for Fibromyalgia", url="https://site.example/n"
        ),
        source="cli",
        now=now,
    )
    with running_worker(app):
        return run_campaign(app, session, [notice_id])


def received(inbox, address: str, campaign_number: int = 1):
    """The mail `address` got from its n-th campaign, checked to carry a VERP return path."""
    item = inbox.to(address)[campaign_number - 1]
    local, _, domain = item.mail_from.partition("@")
    assert local.startswith("bounce+") and domain == "mailer.test", item.mail_from
    return item


def delivery_of(session, address: str, campaign_id: int) -> Delivery:
    session.expire_all()
    return session.scalars(
        select(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Subscriber.email == address, Delivery.campaign_id == campaign_id)
    ).one()


def subscriber_of(session, address: str) -> Subscriber:
    session.expire_all()
    return session.scalars(select(Subscriber).where(Subscriber.email == address)).one()


def dsn(
    to: str,
    recipient: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: no such user",
    original: bytes | None = None,
    status_part: bool = True,
) -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes one, as delivered to `to`."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.org>"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Auto-Submitted"] = "auto-replied"
    report.attach(MIMEText("I'm sorry to have to inform you that your message could not be\n"))
    if status_part:
        per_message, per_recipient = Message(), Message()
        per_message["Reporting-MTA"] = "dns; mx.example.org"
        per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
        per_recipient["Action"] = action
        per_recipient["Status"] = status
        per_recipient["Diagnostic-Code"] = diagnostic.format(rcpt=recipient)
        part = Message()
        part.set_type("message/delivery-status")
        part.set_payload([per_message, per_recipient])
        report.attach(part)
    if original is not None:
        report.attach(MIMEMessage(message_from_bytes(original)))
    # The delivering MTA records the envelope recipient, as Postfix and Dovecot do.
    return f"Delivered-To: {to}\n".encode() + report.as_bytes()


def arf(original: bytes | str, *, to: str = "fbl@mailer.test", headers_only: bool = False):
    """An ARF abuse report (RFC 5965) from a mailbox provider's feedback loop."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "Feedback Loop <fbl@isp.example>"
    report["To"] = to
    report["Subject"] = "Email Feedback Report"
    report.attach(MIMEText("This is an email abuse report for an email message received.\n"))
    fields = Message()
    fields["Feedback-Type"] = "abuse"
    fields["User-Agent"] = "ISP-FBL/1.0"
    fields["Version"] = "1"
    part = Message()
    part.set_type("message/feedback-report")
    part.set_payload([fields])
    report.attach(part)
    if headers_only:  # providers often send only the (redacted) headers
        report.attach(MIMEText(str(original), "rfc822-headers"))
    else:
        report.attach(MIMEMessage(message_from_bytes(original)))  # type: ignore[arg-type]
    return report.as_bytes()


def drop(maildir: Path, *messages: bytes) -> list[str]:
    box = stdlib_mailbox.Maildir(str(maildir), create=False)
    return [box.add(raw) for raw in messages]


def process_maildir(app, maildir: Path) -> dict[str, int]:
    return dict(
        mailbox.process(
            f"maildir://{maildir}",
            app.extensions["mailer.sessionmaker"],
            secret_key=SECRET,
            clock=clock.now,
        )
    )


def files(maildir: Path, sub: str) -> list[str]:
    return sorted(os.listdir(maildir / sub))


def cli(app, *args: str):
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def rows(session) -> list[tuple]:
    """Every row a report could change, to compare before and after."""
    session.expire_all()
    return [
        *session.execute(
            select(Delivery.id, Delivery.status, Delivery.last_error).order_by(Delivery.id)
        ).all(),
        *session.execute(
            select(Subscriber.id, Subscriber.status, Subscriber.soft_bounces).order_by(
                Subscriber.id
            )
        ).all(),
        *session.execute(select(Suppression.email, Suppression.reason)).all(),
        *session.execute(select(BounceEvent.id)).all(),
    ]


def readers(app, session, inbox, *names: str) -> dict[str, str]:
    """A campaign to `names`@example.org; each reader's Message-ID, as a provider echoes it."""
    for name in names:
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    send_campaign(app, session)
    return {
        name: str(received(inbox, f"{name}@example.org").message["Message-ID"]) for name in names
    }
