"""Bounces, complaints and mailto unsubscribes: real campaigns to aiosmtpd, real reports back.

Campaign mail goes out through a real worker to the aiosmtpd sink; the DSNs
and ARF reports are then built the way a receiving MTA builds them, addressed
to the VERP return path each received mail carried, and dropped into a real
Maildir under tmp_path. The IMAP reader is tested against a fake imaplib
object: no maintained IMAP test server is on PyPI without new dependencies.
"""

from __future__ import annotations

import logging
import mailbox as stdlib_mailbox
import os
import re
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from mailer import bounces, clock, mailbox, notices, suppression, token_rows, tokens
from mailer.cli import main
from mailer.mailbox import MailboxUnavailable
from mailer.models import (
    Delivery,
    MailStatus,
    Subscriber,
    Suppression,
    TransactionalMail,
)
from mailer.settings import Settings, SettingsError
from tests.conftest import running_worker
from tests.helpers import add_confirmed, post_signup, run_campaign
from worker import tasks
from worker.schedule import beat_schedule

SECRET = "test-key-9f2c4e7a1b3d5f60-8e1a2c4b6d8f0a13"  # make_settings' secret_key
WEBHOOK_SECRET = "webhook-secret-0123456789"


@pytest.fixture
def campaign_app(make_app):
    return make_app(relay_hold=0.3, throttle_hold=0.6, send_rate=0)


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    path = tmp_path / "bounces"
    stdlib_mailbox.Maildir(str(path), create=True)
    return path


# ---------------------------------------------------------------- helpers


def _send_campaign(app, session) -> int:
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


def _received(inbox, address: str, campaign_number: int = 1):
    """The mail `address` got from its n-th campaign, checked to carry a VERP return path."""
    item = inbox.to(address)[campaign_number - 1]
    local, _, domain = item.mail_from.partition("@")
    assert local.startswith("bounce+") and domain == "mailer.test", item.mail_from
    return item


def _delivery(session, address: str, campaign_id: int) -> Delivery:
    session.expire_all()
    return session.scalars(
        select(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Subscriber.email == address, Delivery.campaign_id == campaign_id)
    ).one()


def _subscriber(session, address: str) -> Subscriber:
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


def _drop(maildir: Path, *messages: bytes) -> list[str]:
    box = stdlib_mailbox.Maildir(str(maildir), create=False)
    return [box.add(raw) for raw in messages]


def _process(app, maildir: Path) -> dict[str, int]:
    return dict(
        mailbox.process(
            f"maildir://{maildir}",
            app.extensions["mailer.sessionmaker"],
            secret_key=SECRET,
            clock=clock.now,
        )
    )


def _files(maildir: Path, sub: str) -> list[str]:
    return sorted(os.listdir(maildir / sub))


# ---------------------------------------------------------------- hard bounces


def test_hard_bounce_suppresses_the_address_and_the_next_campaign_skips_it(
    campaign_app, session, inbox, maildir
):
    for name in ("ann", "bob", "cy"):
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    first = _send_campaign(campaign_app, session)
    ann = _received(inbox, "ann@example.org")

    report = dsn(ann.mail_from, "ann@example.org", original=ann.raw)
    [key] = _drop(maildir, report)
    assert _process(campaign_app, maildir) == {"hard_bounce": 1}

    delivery = _delivery(session, "ann@example.org", first)
    assert delivery.status == "bounced"
    assert delivery.last_error.startswith("hard bounce: 5.1.1")
    assert "no such user" in delivery.last_error
    assert suppression.reason_for(session, "ann@example.org") == "hard_bounce"
    assert suppression.reason_for(session, "bob@example.org") is None
    # Done: moved to cur/ and marked seen, kept as the record of what came in.
    assert _files(maildir, "new") == [] and _files(maildir, "cur") == [f"{key}:2,S"]

    # The same report again (a relay retrying, a copy in another mailbox): nothing more.
    _drop(maildir, report)
    assert _process(campaign_app, maildir) == {"duplicate": 1}
    assert _delivery(session, "ann@example.org", first).last_error == delivery.last_error
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1

    _send_campaign(campaign_app, session)
    assert len(inbox.to("ann@example.org")) == 1  # only the first campaign
    assert len(inbox.to("bob@example.org")) == 2 and len(inbox.to("cy@example.org")) == 2


def test_hard_bounce_of_a_confirmation_mail_suppresses_the_address(
    app, client, session, inbox, maildir
):
    with running_worker(app):
        post_signup(client, app, email="typo@example.org")
        [confirm] = inbox.wait_for("typo@example.org")
    token = confirm.mail_from.partition("+")[2].partition("@")[0]
    mail_id = token_rows.bounce_mail(session, SECRET, token)

    _drop(maildir, dsn(confirm.mail_from, "typo@example.org"))
    assert _process(app, maildir) == {"hard_bounce": 1}
    session.expire_all()
    mail = session.get_one(TransactionalMail, mail_id)
    assert mail.status == MailStatus.FAILED and "5.1.1" in mail.last_error
    assert suppression.reason_for(session, "typo@example.org") == "hard_bounce"


def test_a_report_without_verp_is_matched_by_its_final_recipient(app, session, maildir):
    add_confirmed(session, "gone@example.org")
    session.commit()
    _drop(
        maildir,
        # Some relays rewrite the envelope sender: the report reaches the bare address.
        dsn("bounce@mailer.test", "Gone@Example.org"),
        dsn("bounce@mailer.test", "stranger@example.org"),
    )
    assert _process(app, maildir) == {"hard_bounce": 1, "unmatched": 1}
    assert suppression.reason_for(session, "gone@example.org") == "hard_bounce"
    assert suppression.reason_for(session, "stranger@example.org") is None


# ---------------------------------------------------------------- soft bounces


def test_three_soft_bounces_in_a_row_suppress_two_do_not(campaign_app, session, inbox, maildir):
    for name in ("full", "flaky", "fine"):
        add_confirmed(session, f"{name}@example.org")
    session.commit()

    def soft(address: str, number: int, **options: str) -> bytes:
        return dsn(
            _received(inbox, address, number).mail_from,
            address,
            status=options.pop("status", "4.2.2"),
            diagnostic="smtp; 452 4.2.2 Mailbox full",
            **options,
        )

    first = _send_campaign(campaign_app, session)
    # A "delayed" notice, then the final "failed" for the same mail: one soft bounce.
    _drop(
        maildir,
        soft("full@example.org", 1, action="delayed"),
        soft("full@example.org", 1, status="4.4.7"),
        soft("flaky@example.org", 1),
    )
    assert _process(campaign_app, maildir) == {"soft_bounce": 2, "duplicate": 1}
    assert _subscriber(session, "full@example.org").soft_bounces == 1
    assert _delivery(session, "full@example.org", first).last_error.startswith("soft bounce")

    _send_campaign(campaign_app, session)  # flaky's second mail goes through: no report
    _drop(maildir, soft("full@example.org", 2))
    assert _process(campaign_app, maildir) == {"soft_bounce": 1}
    assert _subscriber(session, "full@example.org").soft_bounces == 2
    assert suppression.reason_for(session, "full@example.org") is None  # two are not enough

    _send_campaign(campaign_app, session)
    _drop(maildir, soft("full@example.org", 3), soft("flaky@example.org", 3))
    assert _process(campaign_app, maildir) == {"soft_bounce": 2}
    assert _subscriber(session, "full@example.org").soft_bounces == 3
    assert suppression.reason_for(session, "full@example.org") == "soft_bounces"
    # flaky's run was broken by the mail that went through in between.
    assert _subscriber(session, "flaky@example.org").soft_bounces == 1
    assert suppression.reason_for(session, "flaky@example.org") is None

    _send_campaign(campaign_app, session)
    assert len(inbox.to("full@example.org")) == 3
    assert len(inbox.to("flaky@example.org")) == 4 and len(inbox.to("fine@example.org")) == 4


# ---------------------------------------------------------------- complaints


def test_arf_complaint_suppresses_and_unsubscribes(campaign_app, session, inbox, maildir):
    add_confirmed(session, "angry@example.org")
    add_confirmed(session, "cross@example.org")
    add_confirmed(session, "calm@example.org")
    session.commit()
    campaign_id = _send_campaign(campaign_app, session)
    angry = _received(inbox, "angry@example.org")
    cross = _received(inbox, "cross@example.org")
    # One report carries the whole original; the other only its Message-ID
    # (providers redact the rest), sent to the feedback-loop address, not VERP.
    redacted = f"Message-ID: {cross.message['Message-ID']}\nSubject: New this week\n"
    _drop(maildir, arf(angry.raw), arf(redacted, headers_only=True))
    assert _process(campaign_app, maildir) == {"complaint": 2}

    for address in ("angry@example.org", "cross@example.org"):
        subscriber = _subscriber(session, address)
        assert suppression.reason_for(session, address) == "complaint"
        assert subscriber.status == "unsubscribed"
        assert subscriber.unsubscribe_channel == "complaint"
        assert subscriber.unsubscribed_campaign_id == campaign_id
    assert _subscriber(session, "calm@example.org").status == "confirmed"

    _drop(maildir, arf(angry.raw))
    assert _process(campaign_app, maildir) == {"duplicate": 1}


# ---------------------------------------------------------------- mailto unsubscribe


def test_mail_to_the_list_unsubscribe_mailto_unsubscribes(campaign_app, session, inbox, maildir):
    add_confirmed(session, "leaving@example.org")
    add_confirmed(session, "staying@example.org")
    session.commit()
    campaign_id = _send_campaign(campaign_app, session)
    header = str(_received(inbox, "leaving@example.org").message["List-Unsubscribe"])
    address = re.search(r"<mailto:([^?>]+)", header).group(1)  # type: ignore[union-attr]
    assert address.startswith("unsubscribe+") and address.endswith("@mailer.test")

    # What a mail client sends for the mailto (RFC 2369), with the case a relay may change.
    request = EmailMessage()
    request["From"] = "leaving@example.org"
    request["To"] = address.upper()
    request["Subject"] = "unsubscribe"
    request.set_content("unsubscribe")
    _drop(maildir, f"Delivered-To: {address}\n".encode() + request.as_bytes())
    assert _process(campaign_app, maildir) == {"unsubscribed": 1}

    leaving = _subscriber(session, "leaving@example.org")
    assert leaving.status == "unsubscribed" and leaving.unsubscribe_channel == "mailto"
    assert leaving.unsubscribed_campaign_id == campaign_id
    assert suppression.reason_for(session, "leaving@example.org") == "unsubscribed"
    assert _subscriber(session, "staying@example.org").status == "confirmed"

    _drop(maildir, request.as_bytes())
    assert _process(campaign_app, maildir) == {"duplicate": 1}


# ---------------------------------------------------------------- bad input


def test_a_malformed_report_is_logged_kept_for_a_person_and_the_rest_processed(
    campaign_app, session, inbox, maildir, caplog
):
    add_confirmed(session, "ann@example.org")
    add_confirmed(session, "bob@example.org")
    session.commit()
    _send_campaign(campaign_app, session)
    # The Celery worker took over the root logger's handlers: listen on ours directly.
    logger = logging.getLogger("mailer.bounces")
    logger.addHandler(caplog.handler)
    ann, bob = _received(inbox, "ann@example.org"), _received(inbox, "bob@example.org")

    no_status = dsn(ann.mail_from, "ann@example.org", status_part=False)
    bad_status = dsn(ann.mail_from, "ann@example.org", status="five-one-one")
    auto_reply = b"From: bob@example.org\nTo: x\nSubject: Out of office\n\nBack on Monday.\n"
    good = dsn(bob.mail_from, "bob@example.org")
    keys = _drop(maildir, no_status, bad_status, auto_reply, b"\x00\xff\xfe", good)
    try:
        assert _process(campaign_app, maildir) == {"malformed": 2, "ignored": 2, "hard_bounce": 1}
    finally:
        logger.removeHandler(caplog.handler)

    assert suppression.reason_for(session, "bob@example.org") == "hard_bounce"
    assert suppression.reason_for(session, "ann@example.org") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(keys[0] in line and "without a message/delivery-status" in line for line in warnings)
    assert any(keys[1] in line and "five-one-one" in line for line in warnings)
    # Kept unseen and flagged for a person; the good one is seen. None of them is taken again.
    assert _files(maildir, "cur") == sorted(
        [f"{keys[0]}:2,F", f"{keys[1]}:2,F", f"{keys[2]}:2,F", f"{keys[3]}:2,F", f"{keys[4]}:2,S"]
    )
    assert _process(campaign_app, maildir) == {}


def test_forged_tokens_change_nothing(campaign_app, session, inbox, maildir):
    add_confirmed(session, "ann@example.org")
    session.commit()
    campaign_id = _send_campaign(campaign_app, session)
    ann = _received(inbox, "ann@example.org")
    delivery_id = _delivery(session, "ann@example.org", campaign_id).id
    subscriber_id = _subscriber(session, "ann@example.org").id
    good = ann.mail_from.partition("+")[2].partition("@")[0]

    other_purpose = tokens.make_compact(SECRET, tokens.Purpose.UNSUBSCRIBE, delivery_id, bind="")
    other_key = tokens.make_compact("other-key", tokens.Purpose.BOUNCE, delivery_id, bind="")
    forged = [
        f"bounce+{delivery_id}-aaaaaaaaaaaaaaaa@mailer.test",  # guessed MAC
        f"bounce+{good[:-1]}@mailer.test",  # truncated
        f"bounce+{delivery_id + 1}-{good.rsplit('-', 1)[1]}@mailer.test",  # another mail's id
        # A real token of another purpose, and one made with another key.
        f"bounce+{other_purpose}@x.test",
        f"bounce+{other_key}@x.test",
    ]
    # Each also carries the original mail, whose Message-ID would match: no fallback.
    reports = [dsn(address, "ann@example.org", original=ann.raw) for address in forged]
    mailto = EmailMessage()
    mailto["To"] = f"unsubscribe+{subscriber_id}-{campaign_id}-aaaaaaaaaaaaaaaa@mailer.test"
    mailto["Subject"] = "unsubscribe"
    _drop(maildir, *reports, mailto.as_bytes())
    assert _process(campaign_app, maildir) == {"forged": 6}

    delivery = _delivery(session, "ann@example.org", campaign_id)
    assert delivery.status == "sent" and delivery.last_error == ""
    assert _subscriber(session, "ann@example.org").status == "confirmed"
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert all(name.endswith(":2,F") for name in _files(maildir, "cur"))


# ---------------------------------------------------------------- IMAP


class FakeIMAP4:
    """imaplib.IMAP4's interface over a dict: what mailer.mailbox calls, with imaplib's replies."""

    def __init__(self, messages: dict[int, bytes], password: str = "pw") -> None:
        self.messages = messages
        self.flags: dict[int, set[str]] = {uid: set() for uid in messages}
        self.password = password
        self.capabilities = ("IMAP4REV1", "IDLE")
        self.logged_out = False
        self.selected = ""

    def __call__(self, host: str, port: int, timeout: float | None = None) -> FakeIMAP4:
        self.host, self.port = host, port
        return self

    def login(self, user: str, password: str):
        if password != self.password:
            import imaplib

            raise imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] Authentication failed.")
        return "OK", [b"Logged in"]

    def select(self, mailbox: str):
        self.selected = mailbox
        return "OK", [str(len(self.messages)).encode()]

    def uid(self, command: str, *args):
        if command == "SEARCH":
            assert args == (None, "UNSEEN", "UNFLAGGED")
            found = [
                str(uid).encode()
                for uid in sorted(self.messages)
                if not self.flags[uid] & {"\\Seen", "\\Flagged"}
            ]
            return "OK", [b" ".join(found)]
        if command == "FETCH":
            uid, what = int(args[0]), args[1]
            assert what == "(BODY.PEEK[])"  # PEEK: fetching alone must not mark it seen
            raw = self.messages[uid]
            return "OK", [(f"1 (UID {uid} BODY[] {{{len(raw)}}}".encode(), raw), b")"]
        if command == "STORE":
            uid, mode, flags = int(args[0]), args[1], args[2]
            assert mode == "+FLAGS"
            self.flags[uid] |= set(flags.strip("()").split())
            return "OK", [f"1 (FLAGS ({' '.join(sorted(self.flags[uid]))}))".encode()]
        raise AssertionError(f"unexpected IMAP command {command}")

    def close(self):
        return "OK", [b"closed"]

    def logout(self):
        self.logged_out = True
        return "BYE", [b"logging out"]


def test_imap_mailbox_marks_applied_reports_seen_and_flags_malformed_ones(app, session):
    add_confirmed(session, "ann@example.org")
    session.commit()
    server = FakeIMAP4(
        {
            7: dsn("bounce@mailer.test", "ann@example.org"),
            8: dsn("bounce@mailer.test", "ann@example.org", status_part=False),
        }
    )
    factory = app.extensions["mailer.sessionmaker"]
    url = "imaps://bounces:pw@imap.mailer.test/Bounces"
    counts = mailbox.process(url, factory, secret_key=SECRET, clock=clock.now, imap_connect=server)
    assert dict(counts) == {"hard_bounce": 1, "malformed": 1}
    assert server.flags == {7: {"\\Seen"}, 8: {"\\Flagged"}}
    assert (server.host, server.port, server.selected) == ("imap.mailer.test", 993, '"Bounces"')
    assert server.logged_out
    assert suppression.reason_for(session, "ann@example.org") == "hard_bounce"
    again = mailbox.process(url, factory, secret_key=SECRET, clock=clock.now, imap_connect=server)
    assert dict(again) == {}

    with pytest.raises(MailboxUnavailable, match=r"imap\.mailer\.test") as refused:
        mailbox.process(
            "imaps://bounces:wrong@imap.mailer.test/INBOX",
            factory,
            secret_key=SECRET,
            clock=clock.now,
            imap_connect=server,
        )
    assert "wrong" not in str(refused.value)  # the password never reaches a log line


# ---------------------------------------------------------------- webhook


def test_webhook_applies_bounces_and_complaints(make_app, session, inbox):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET, relay_hold=0.3, send_rate=0)
    for name in ("hard", "soft", "spam", "stranger-neighbour"):
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    campaign_id = _send_campaign(app, session)
    message_id = str(_received(inbox, "hard@example.org").message["Message-ID"])
    events = [
        {
            "type": "bounce",
            "bounce_type": "hard",
            "message_id": message_id.strip("<>"),
            "diagnostic": "550 5.1.1 user unknown",
        },
        {"type": "bounce", "bounce_type": "soft", "email": "Soft@example.org"},
        {"type": "complaint", "email": "spam@example.org"},
        {"type": "bounce", "bounce_type": "hard", "email": "nobody@example.org"},
    ]
    response = app.test_client().post(
        "/webhooks/bounce",
        json={"events": events},
        headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "applied": 4,
        "outcomes": {"hard_bounce": 1, "soft_bounce": 1, "complaint": 1, "unmatched": 1},
    }
    delivery = _delivery(session, "hard@example.org", campaign_id)
    assert delivery.status == "bounced" and "user unknown" in delivery.last_error
    assert suppression.reason_for(session, "hard@example.org") == "hard_bounce"
    assert _subscriber(session, "soft@example.org").soft_bounces == 1
    assert suppression.reason_for(session, "spam@example.org") == "complaint"
    assert _subscriber(session, "spam@example.org").unsubscribe_channel == "complaint"
    assert _subscriber(session, "stranger-neighbour@example.org").status == "confirmed"


def test_webhook_soft_bounces_by_address_count_to_suppression(make_app, session):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET)
    add_confirmed(session, "full@example.org")
    session.commit()
    event = {"type": "bounce", "bounce_type": "soft", "email": "full@example.org"}
    for count in (1, 2, 3):
        response = app.test_client().post(
            "/webhooks/bounce",
            json={"events": [event]},
            headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
        )
        assert response.get_json() == {"applied": 1, "outcomes": {"soft_bounce": 1}}
        assert _subscriber(session, "full@example.org").soft_bounces == count
        expected = "soft_bounces" if count == 3 else None
        assert suppression.reason_for(session, "full@example.org") == expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {"events": [{"type": "bounce", "bounce_type": "hard", "email": "a@b.c", "colour": 1}]},
            "unknown field 'colour'",
        ),
        ({"events": [{"type": "delivered", "email": "a@example.org"}]}, "type must be"),
        ({"events": [{"type": "bounce", "email": "a@example.org"}]}, "bounce_type must be"),
        ({"events": [{"type": "bounce", "bounce_type": "hard"}]}, "needs an email or a message_id"),
        ({"events": [{"type": "complaint", "email": "not an address"}]}, "email is not an address"),
        ({"events": [{"type": "complaint", "email": 7}]}, "email must be a string"),
        ({"events": []}, "events must be a list"),
        ({"event": []}, '{"events": [...]}'),
        ([1, 2], '{"events": [...]}'),
        # A good event before a bad one: all or nothing.
        (
            {"events": [{"type": "complaint", "email": "victim@example.org"}, "x"]},
            "events[1] must be an object",
        ),
    ],
)
def test_webhook_refuses_a_bad_body_and_applies_nothing(make_app, session, body, problem):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET)
    add_confirmed(session, "victim@example.org")
    session.commit()
    response = app.test_client().post(
        "/webhooks/bounce", json=body, headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"}
    )
    assert response.status_code == 400
    assert problem in response.get_json()["error"]
    assert _subscriber(session, "victim@example.org").status == "confirmed"
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_webhook_needs_the_secret_and_json(make_app, session):
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET)
    add_confirmed(session, "victim@example.org")
    session.commit()
    client = app.test_client()
    complaint = {"events": [{"type": "complaint", "email": "victim@example.org"}]}
    for headers in (
        {},
        {"Authorization": "Bearer webhook-secret-012345678"},  # one character short
        {"Authorization": f"Basic {WEBHOOK_SECRET}"},
    ):
        response = client.post("/webhooks/bounce", json=complaint, headers=headers)
        assert response.status_code == 401 and "Bearer" in response.get_json()["error"]
    auth = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}
    response = client.post("/webhooks/bounce", data="events=1", headers=auth)
    assert response.status_code == 400 and "must be JSON" in response.get_json()["error"]
    response = client.post(
        "/webhooks/bounce", data=b"{" * 70_000, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert _subscriber(session, "victim@example.org").status == "confirmed"

    off = make_app()  # no secret: the endpoint does not exist
    response = off.test_client().post("/webhooks/bounce", json=complaint, headers=auth)
    assert response.status_code == 404
    assert suppression.reason_for(session, "victim@example.org") is None


# ---------------------------------------------------------------- CLI, beat, settings


def _cli(app, *args: str):
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def test_cli_and_beat_process_the_configured_mailbox(make_app, session, maildir):
    app = make_app(bounce_mailbox=f"maildir://{maildir}")
    add_confirmed(session, "ann@example.org")
    add_confirmed(session, "bob@example.org")
    session.commit()
    _drop(
        maildir,
        dsn("bounce@mailer.test", "ann@example.org"),
        dsn("bounce@mailer.test", "ann@example.org", status_part=False),
    )
    result = _cli(app, "bounces", "process")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2 messages processed",
        "  hard_bounce: 1",
        "  malformed: 1",
        "messages flagged for a person to read were left unseen in the mailbox",
    ]
    assert suppression.reason_for(session, "ann@example.org") == "hard_bounce"

    # The beat's task reads the same mailbox, every 5 minutes, on the housekeeping queue.
    _drop(maildir, dsn("bounce@mailer.test", "bob@example.org"))
    with app.app_context():
        assert tasks.process_bounces() == {"hard_bounce": 1}
    assert beat_schedule()["process-bounces"]["schedule"] == 300.0
    assert app.extensions["celery"].conf.task_routes["mailer.process_bounces"] == {
        "queue": "housekeeping"
    }

    assert _cli(app, "bounces", "process").output.splitlines() == ["0 messages processed"]
    missing = _cli(app, "bounces", "process", "--mailbox", f"maildir://{maildir}/nope")
    assert missing.exit_code == 1 and "is not a Maildir" in missing.output


def test_cli_without_a_mailbox_says_which_setting(app):
    result = _cli(app, "bounces", "process")
    assert result.exit_code == 1 and "MAILER_BOUNCE_MAILBOX is not set" in result.output


REQUIRED = {
    "MAILER_SECRET_KEY": SECRET,
    "MAILER_BASE_URL": "https://news.example.com/",
    "MAILER_FROM": "Health Notices <notices@example.com>",
    "MAILER_POSTAL_ADDRESS": "1 Main Street, Springfield",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAILER_BOUNCE_MAILBOX", "maildir://var/mail/bounces"),  # relative
        ("MAILER_BOUNCE_MAILBOX", "/var/mail/bounces"),
        ("MAILER_BOUNCE_MAILBOX", "pop3://u:p@host/INBOX"),
        ("MAILER_BOUNCE_MAILBOX", "imaps://host/INBOX"),  # no credentials
        ("MAILER_BOUNCE_MAILBOX", "imap://u:p@host:port/INBOX"),
        ("MAILER_BOUNCE_WEBHOOK_SECRET", "short"),
    ],
)
def test_malformed_bounce_settings_stop_start_up_naming_them(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**REQUIRED, name: value})


def test_bounce_settings_read_from_the_environment():
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MAILER_BOUNCE_MAILBOX": "imaps://bounces:p%40ss@imap.example.com:993/INBOX",
            "MAILER_BOUNCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    assert settings.bounce_mailbox.startswith("imaps://bounces:")
    assert settings.bounce_webhook_secret == WEBHOOK_SECRET
    assert Settings.from_env(REQUIRED).bounce_mailbox == ""


def test_parse_reads_the_worst_recipient_of_a_report():
    """A report on several recipients is as bad as its worst (ours have one, relays may merge)."""
    raw = dsn(
        "bounce+1-abcdefghijklmnop@mailer.test", "a@example.org", action="delayed", status="4.4.1"
    )
    raw = raw.replace(
        b"Action: delayed",
        b"Action: delivered\nStatus: 2.0.0\n\nFinal-Recipient: rfc822; b@example.org\n"
        b"Action: delayed",
    )
    report = bounces.parse(raw)
    assert report.kind == "soft_bounce" and report.recipient == "b@example.org"
    assert report.diagnostic.startswith("4.4.1")
    assert report.bounce_tokens == ("1-abcdefghijklmnop",)
