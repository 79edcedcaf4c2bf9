"""What a reader, an admin and a mailbox do, as the attack tests replay it."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import re
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import clock, notices
from mailer.cli import main
from mailer.models import Subscriber
from tests.helpers import CONFIRM_LINK, PREFERENCES_LINK, hidden, link, path_of, post_signup
from tests.smtp_sink import Inbox, Received

UNSUBSCRIBE_URL = re.compile(r"<(https?://[^>]+/u/[^>]+)>")
MAILTO_TOKEN = re.compile(r"mailto:unsubscribe\+([^@]+)@")


def cli(app: Flask, *args: str, input: str | None = None) -> Result:
    from flask.cli import ScriptInfo

    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app), input=input)


def confirm_signup(client: FlaskClient, app: Flask, inbox: Inbox, email: str) -> Received:
    """Sign up and press Confirm in the mail; return the confirmation mail."""
    post_signup(client, app, email=email)
    [mail] = inbox.wait_for(email)
    path = path_of(link(CONFIRM_LINK, mail.message))
    page = client.get(path)
    client.post(path, data={"csrf_token": hidden(page.text, "csrf_token")})
    return mail


def ask_for_link(client: FlaskClient, email: str, ip: str = "127.0.0.1"):
    form = client.get("/preferences")
    return client.post(
        "/preferences",
        data={"csrf_token": hidden(form.text, "csrf_token"), "email": email},
        environ_base={"REMOTE_ADDR": ip},
    )


def preferences_path(mail: Received) -> str:
    return path_of(link(PREFERENCES_LINK, mail.message))


def post_form(client: FlaskClient, path: str, data: dict | None = None, **kwargs):
    """POST a reader form the way its page does: with the page's CSRF token."""
    page = client.get(path)
    token = hidden(page.text, "csrf_token")
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


def notice(session: Session, title: str = "Sleep and pain", kind: str = "article") -> int:
    notice_id = notices.create_notice(
        session,
        notices.NoticeDraft(kind=kind, title=title, url=f"https://site.example/{kind}"),
        source="cli",
        now=clock.now(),
    )
    session.commit()
    return notice_id


def subscriber(session: Session, email: str) -> Subscriber | None:
    session.expire_all()
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def unsubscribe_path(mail: Received) -> str:
    [url] = UNSUBSCRIBE_URL.findall(str(mail.message["List-Unsubscribe"]))
    return path_of(url)


def make_maildir(path: Path) -> Path:
    stdlib_mailbox.Maildir(str(path), create=True)
    return path


def drop(maildir: Path, *messages: EmailMessage | bytes) -> None:
    box = stdlib_mailbox.Maildir(str(maildir), create=False)
    for message in messages:
        box.add(message if isinstance(message, bytes) else message.as_bytes())


def bounce_report(to: str, recipient: str) -> bytes:
    """A DSN (RFC 3464) as Postfix writes one for `recipient`, delivered to VERP address `to`."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.org>"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("I'm sorry to have to inform you that your message could not be\n"))
    per_message, per_recipient = Message(), Message()
    per_message["Reporting-MTA"] = "dns; mx.example.org"
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Diagnostic-Code"] = "smtp; 550 5.1.1 no such user"
    part = Message()
    part.set_type("message/delivery-status")
    part.set_payload([per_message, per_recipient])
    report.attach(part)
    return f"Delivered-To: {to}\n".encode() + report.as_bytes()


def mailto_unsubscribe(token: str, domain: str = "mailer.test") -> bytes:
    """What a mail client sends to the List-Unsubscribe mailto address."""
    message = EmailMessage()
    message["From"] = "reader@example.org"
    message["To"] = f"unsubscribe+{token}@{domain}"
    message["Subject"] = "unsubscribe"
    message.set_content("unsubscribe")
    return message.as_bytes()
