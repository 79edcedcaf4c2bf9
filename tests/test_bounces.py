"""Bounces, complaints and mailto unsubscribes: real campaigns to aiosmtpd, real reports back.

Campaign mail goes out through a real worker to the aiosmtpd sink; the DSNs
and ARF reports are then built the way a receiving MTA builds them, addressed
to the VERP return path each received mail carried, and dropped into a real
Maildir under tmp_path. The IMAP reader is tested against a fake imaplib
object: no maintained IMAP test server is on PyPI without new dependencies.
"""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from mailer import bounces, suppression, token_rows, tokens
from mailer.models import MailStatus, Suppression, TransactionalMail
from tests.bounce_helpers import (
    SECRET,
    arf,
    delivery_of,
    drop,
    dsn,
    files,
    process_maildir,
    received,
    send_campaign,
    subscriber_of,
)
from tests.conftest import running_worker
from tests.helpers import add_confirmed, post_signup

WEBHOOK_SECRET = "webhook-secret-0123456789"


def test_hard_bounce_suppresses_the_address_and_the_next_campaign_skips_it(
    campaign_app, session, inbox, maildir
):
    for name in ("ann", "bob", "cy"):
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    first = send_campaign(campaign_app, session)
    ann = received(inbox, "ann@example.org")

    report = dsn(ann.mail_from, "ann@example.org", original=ann.raw)
    [key] = drop(maildir, report)
    assert process_maildir(campaign_app, maildir) == {"hard_bounce": 1}

    delivery = delivery_of(session, "ann@example.org", first)
    assert delivery.status == "bounced"
    assert delivery.last_error.startswith("hard bounce: 5.1.1")
    assert "no such user" in delivery.last_error
    assert suppression.reason_for(session, "ann@example.org") == "hard_bounce"
    assert suppression.reason_for(session, "bob@example.org") is None
    # Done: moved to cur/ and marked seen, kept as the record of what came in.
    assert files(maildir, "new") == [] and files(maildir, "cur") == [f"{key}:2,S"]

    # The same report again (a relay retrying, a copy in another mailbox): nothing more.
    drop(maildir, report)
    assert process_maildir(campaign_app, maildir) == {"duplicate": 1}
    assert delivery_of(session, "ann@example.org", first).last_error == delivery.last_error
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1

    send_campaign(campaign_app, session)
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

    drop(maildir, dsn(confirm.mail_from, "typo@example.org"))
    assert process_maildir(app, maildir) == {"hard_bounce": 1}
    session.expire_all()
    mail = session.get_one(TransactionalMail, mail_id)
    assert mail.status == MailStatus.FAILED and "5.1.1" in mail.last_error
    assert suppression.reason_for(session, "typo@example.org") == "hard_bounce"


def test_without_verp_a_report_counts_only_by_the_message_id_it_quotes(
    campaign_app, session, inbox, maildir
):
    """Some relays rewrite the envelope sender, so the report reaches the bare address.
    Then only the original it quotes (our Message-ID) says it is about our mail."""
    add_confirmed(session, "gone@example.org")
    add_confirmed(session, "named@example.org")
    session.commit()
    campaign_id = send_campaign(campaign_app, session)
    gone = received(inbox, "gone@example.org")
    quoting = dsn("bounce@mailer.test", "Gone@Example.org", original=gone.raw)
    # A subscriber's address alone is no proof: anyone could write this report.
    naming = dsn("bounce@mailer.test", "named@example.org")
    keys = drop(maildir, quoting, naming)
    assert process_maildir(campaign_app, maildir) == {"hard_bounce": 1, "unmatched": 1}

    assert suppression.reason_for(session, "gone@example.org") == "hard_bounce"
    assert delivery_of(session, "gone@example.org", campaign_id).status == "bounced"
    assert suppression.reason_for(session, "named@example.org") is None
    assert delivery_of(session, "named@example.org", campaign_id).status == "sent"
    assert files(maildir, "cur") == sorted([f"{keys[0]}:2,S", f"{keys[1]}:2,F"])


@pytest.mark.parametrize("header", ["Delivered-To", "X-Original-To", "Envelope-To", "To"])
def test_the_verp_address_counts_in_whichever_header_the_mta_wrote(
    campaign_app, session, inbox, maildir, header
):
    """Postfix and Dovecot write Delivered-To, Postfix X-Original-To, Exim Envelope-to;
    the bouncing MTA addresses the report To our return path."""
    add_confirmed(session, "ann@example.org")
    session.commit()
    campaign_id = send_campaign(campaign_app, session)
    verp = received(inbox, "ann@example.org").mail_from
    plain = dsn("bounce@mailer.test", "ann@example.org")
    plain = plain.removeprefix(b"Delivered-To: bounce@mailer.test\n")
    if header == "To":
        report = plain.replace(b"To: bounce@mailer.test", f"To: {verp}".encode(), 1)
    else:  # the header says where it was delivered; To stays the plain address
        report = f"{header}: {verp}\n".encode() + plain
    drop(maildir, report)
    assert process_maildir(campaign_app, maildir) == {"hard_bounce": 1}
    assert delivery_of(session, "ann@example.org", campaign_id).status == "bounced"


def test_a_report_at_a_bounce_address_with_a_dot_in_its_token_changes_nothing(
    campaign_app, session, inbox, maildir
):
    """The forgery of issue 12: `bounce+x.y@` slipped past the token pattern and the
    report was then matched by the address it named, suppressing a stranger for good."""
    add_confirmed(session, "victim@example.org")
    session.commit()
    campaign_id = send_campaign(campaign_app, session)
    victim = received(inbox, "victim@example.org")
    forged = "bounce+x.y@mailer.test"
    # A DSN, and an ARF complaint whose "original" is made up by the attacker.
    made_up = b"From: notices@mailer.test\nTo: victim@example.org\nSubject: hi\n\nhello\n"
    complaint = arf(made_up, to=forged)
    drop(
        maildir,
        dsn(forged, "victim@example.org"),
        b"Delivered-To: " + forged.encode() + b"\n" + complaint,
    )
    outcomes = process_maildir(campaign_app, maildir)

    assert outcomes == {"forged": 2}
    assert suppression.reason_for(session, "victim@example.org") is None
    subscriber = subscriber_of(session, "victim@example.org")
    assert subscriber.status == "confirmed" and subscriber.soft_bounces == 0
    assert delivery_of(session, "victim@example.org", campaign_id).status == "sent"
    assert victim.mail_from != forged
    assert all(name.endswith(":2,F") for name in files(maildir, "cur"))


# ---------------------------------------------------------------- soft bounces


def test_three_soft_bounces_in_a_row_suppress_two_do_not(campaign_app, session, inbox, maildir):
    for name in ("full", "flaky", "fine"):
        add_confirmed(session, f"{name}@example.org")
    session.commit()

    def soft(address: str, number: int, **options: str) -> bytes:
        return dsn(
            received(inbox, address, number).mail_from,
            address,
            status=options.pop("status", "4.2.2"),
            diagnostic="smtp; 452 4.2.2 Mailbox full",
            **options,
        )

    first = send_campaign(campaign_app, session)
    # A "delayed" notice, then the final "failed" for the same mail: one soft bounce.
    drop(
        maildir,
        soft("full@example.org", 1, action="delayed"),
        soft("full@example.org", 1, status="4.4.7"),
        soft("flaky@example.org", 1),
    )
    assert process_maildir(campaign_app, maildir) == {"soft_bounce": 2, "duplicate": 1}
    assert subscriber_of(session, "full@example.org").soft_bounces == 1
    assert delivery_of(session, "full@example.org", first).last_error.startswith("soft bounce")

    send_campaign(campaign_app, session)  # flaky's second mail goes through: no report
    drop(maildir, soft("full@example.org", 2))
    assert process_maildir(campaign_app, maildir) == {"soft_bounce": 1}
    assert subscriber_of(session, "full@example.org").soft_bounces == 2
    assert suppression.reason_for(session, "full@example.org") is None  # two are not enough

    send_campaign(campaign_app, session)
    drop(maildir, soft("full@example.org", 3), soft("flaky@example.org", 3))
    assert process_maildir(campaign_app, maildir) == {"soft_bounce": 2}
    assert subscriber_of(session, "full@example.org").soft_bounces == 3
    assert suppression.reason_for(session, "full@example.org") == "soft_bounces"
    # flaky's run was broken by the mail that went through in between.
    assert subscriber_of(session, "flaky@example.org").soft_bounces == 1
    assert suppression.reason_for(session, "flaky@example.org") is None

    send_campaign(campaign_app, session)
    assert len(inbox.to("full@example.org")) == 3
    assert len(inbox.to("flaky@example.org")) == 4 and len(inbox.to("fine@example.org")) == 4


# ---------------------------------------------------------------- complaints


def test_arf_complaint_suppresses_and_unsubscribes(campaign_app, session, inbox, maildir):
    add_confirmed(session, "angry@example.org")
    add_confirmed(session, "cross@example.org")
    add_confirmed(session, "calm@example.org")
    session.commit()
    campaign_id = send_campaign(campaign_app, session)
    angry = received(inbox, "angry@example.org")
    cross = received(inbox, "cross@example.org")
    # One report carries the whole original; the other only its Message-ID
    # (providers redact the rest), sent to the feedback-loop address, not VERP.
    redacted = f"Message-ID: {cross.message['Message-ID']}\nSubject: New this week\n"
    drop(maildir, arf(angry.raw), arf(redacted, headers_only=True))
    assert process_maildir(campaign_app, maildir) == {"complaint": 2}

    for address in ("angry@example.org", "cross@example.org"):
        subscriber = subscriber_of(session, address)
        assert suppression.reason_for(session, address) == "complaint"
        assert subscriber.status == "unsubscribed"
        assert subscriber.unsubscribe_channel == "complaint"
        assert subscriber.unsubscribed_campaign_id == campaign_id
    assert subscriber_of(session, "calm@example.org").status == "confirmed"

    drop(maildir, arf(angry.raw))
    assert process_maildir(campaign_app, maildir) == {"duplicate": 1}


# ---------------------------------------------------------------- mailto unsubscribe


def test_mail_to_the_list_unsubscribe_mailto_unsubscribes(campaign_app, session, inbox, maildir):
    add_confirmed(session, "leaving@example.org")
    add_confirmed(session, "staying@example.org")
    session.commit()
    campaign_id = send_campaign(campaign_app, session)
    header = str(received(inbox, "leaving@example.org").message["List-Unsubscribe"])
    address = re.search(r"<mailto:([^?>]+)", header).group(1)  # type: ignore[union-attr]
    assert address.startswith("unsubscribe+") and address.endswith("@mailer.test")

    # What a mail client sends for the mailto (RFC 2369), with the case a relay may change.
    request = EmailMessage()
    request["From"] = "leaving@example.org"
    request["To"] = address.upper()
    request["Subject"] = "unsubscribe"
    request.set_content("unsubscribe")
    drop(maildir, f"Delivered-To: {address}\n".encode() + request.as_bytes())
    assert process_maildir(campaign_app, maildir) == {"unsubscribed": 1}

    leaving = subscriber_of(session, "leaving@example.org")
    assert leaving.status == "unsubscribed" and leaving.unsubscribe_channel == "mailto"
    assert leaving.unsubscribed_campaign_id == campaign_id
    assert suppression.reason_for(session, "leaving@example.org") == "unsubscribed"
    assert subscriber_of(session, "staying@example.org").status == "confirmed"

    drop(maildir, request.as_bytes())
    assert process_maildir(campaign_app, maildir) == {"duplicate": 1}


# ---------------------------------------------------------------- bad input


def test_non_standard_reports_are_read_and_what_nobody_understands_counts_soft(
    campaign_app, session, inbox, maildir
):
    for name in ("ann", "bob", "cy", "dee"):
        add_confirmed(session, f"{name}@example.org")
    session.commit()
    campaign_id = send_campaign(campaign_app, session)
    ann, bob, cy, dee = (
        received(inbox, f"{name}@example.org") for name in ("ann", "bob", "cy", "dee")
    )

    # Comments after Action and Status, as some MTAs write them.
    commented = dsn(ann.mail_from, "ann@example.org", action="failed (bad destination mailbox)")
    commented = commented.replace(b"Status: 5.1.1", b"Status: 5.1.1 (unknown user)")
    # A Status that is no code at all: "failed" alone says it is permanent.
    nonsense = dsn(bob.mail_from, "bob@example.org", status="five-one-one")
    # No delivery-status part, no address anywhere: at a verified VERP address
    # it is still about that mail, and counts soft.
    unreadable = dsn(cy.mail_from, "cy@example.org", status_part=False)
    auto_reply = (
        f"Delivered-To: {dee.mail_from}\nFrom: dee@example.org\nTo: {dee.mail_from}\n"
        "Subject: Out of office\nAuto-Submitted: auto-replied\n\nBack on Monday.\n"
    ).encode()
    keys = drop(maildir, commented, nonsense, unreadable, auto_reply)
    assert process_maildir(campaign_app, maildir) == {
        "hard_bounce": 2,
        "soft_bounce": 1,
        "ignored": 1,
    }

    ann_delivery = delivery_of(session, "ann@example.org", campaign_id)
    assert ann_delivery.status == "bounced" and "5.1.1" in ann_delivery.last_error
    assert suppression.reason_for(session, "bob@example.org") == "hard_bounce"
    assert subscriber_of(session, "cy@example.org").soft_bounces == 1
    assert suppression.reason_for(session, "cy@example.org") is None
    dee_row = subscriber_of(session, "dee@example.org")
    assert dee_row.soft_bounces == 0 and suppression.reason_for(session, "dee@example.org") is None
    # All four were understood: none is left for a person.
    assert all(name.endswith(":2,S") for name in files(maildir, "cur")) and len(keys) == 4


def test_mail_that_matches_nothing_is_logged_kept_for_a_person_and_the_rest_processed(
    campaign_app, session, inbox, maildir, caplog
):
    add_confirmed(session, "bob@example.org")
    session.commit()
    send_campaign(campaign_app, session)
    # The Celery worker took over the root logger's handlers: listen on ours directly.
    logger = logging.getLogger("mailer.bounces")
    logger.addHandler(caplog.handler)
    bob = received(inbox, "bob@example.org")
    reader = b"From: someone@example.org\nTo: bounce@mailer.test\nSubject: hello\n\nHi there\n"
    good = dsn(bob.mail_from, "bob@example.org")
    keys = drop(maildir, b"", reader, b"\x00\xff\xfe", good)
    try:
        outcomes = process_maildir(campaign_app, maildir)
    finally:
        logger.removeHandler(caplog.handler)

    assert outcomes == {"malformed": 2, "unmatched": 1, "hard_bounce": 1}
    assert suppression.reason_for(session, "bob@example.org") == "hard_bounce"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(keys[0] in line and "empty" in line for line in warnings)
    assert any(keys[2] in line and "no headers" in line for line in warnings)
    # Kept unseen and flagged for a person; the good one is seen. None of them is taken again.
    assert files(maildir, "cur") == sorted(
        [f"{keys[0]}:2,F", f"{keys[1]}:2,F", f"{keys[2]}:2,F", f"{keys[3]}:2,S"]
    )
    assert process_maildir(campaign_app, maildir) == {}


def test_forged_tokens_change_nothing(campaign_app, session, inbox, maildir):
    add_confirmed(session, "ann@example.org")
    session.commit()
    campaign_id = send_campaign(campaign_app, session)
    ann = received(inbox, "ann@example.org")
    delivery_id = delivery_of(session, "ann@example.org", campaign_id).id
    subscriber_id = subscriber_of(session, "ann@example.org").id
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
    drop(maildir, *reports, mailto.as_bytes())
    assert process_maildir(campaign_app, maildir) == {"forged": 6}

    delivery = delivery_of(session, "ann@example.org", campaign_id)
    assert delivery.status == "sent" and delivery.last_error == ""
    assert subscriber_of(session, "ann@example.org").status == "confirmed"
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert all(name.endswith(":2,F") for name in files(maildir, "cur"))


def test_every_failed_recipient_of_a_report_is_read():
    """Relays may merge recipients into one report; each failed or delayed one is kept."""
    raw = dsn(
        "bounce+1-abcdefghijklmnop@mailer.test", "a@example.org", action="delayed", status="4.4.1"
    )
    raw = raw.replace(
        b"Action: delayed",
        b"Action: delivered\nStatus: 2.0.0\n\nFinal-Recipient: rfc822; b@example.org\n"
        b"Action: delayed\nStatus: 4.4.1\n\nFinal-Recipient: rfc822; c@example.org\n"
        b"Action: failed\nStatus: 5.1.1",
    )
    report = bounces.read(raw)
    assert report.kind == "bounce"
    assert [(f.address, f.severity, f.status) for f in report.failures] == [
        ("b@example.org", "soft", "4.4.1"),
        ("c@example.org", "hard", "5.1.1"),
    ]
    assert report.envelope.bounce_tokens == ("1-abcdefghijklmnop",)
