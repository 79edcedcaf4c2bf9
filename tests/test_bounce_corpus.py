"""Real-world reports (tests/bounce_corpus.py) against real deliveries of a real campaign.

One campaign goes out through a real worker to aiosmtpd, one reader per
sample. Each sample is then re-addressed as the delivering MTA would hand
it over: to the VERP address of that reader's mail (it must act), to the
plain bounce address or to a forged VERP address (it must change nothing
for anyone: the rows are read before and after).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from mailer import suppression
from mailer.models import BounceEvent
from tests import bounce_corpus
from tests.bounce_helpers import (
    delivery_of,
    drop,
    files,
    process_maildir,
    received,
    rows,
    send_campaign,
    subscriber_of,
)
from tests.helpers import add_confirmed

OUTCOME = {"hard": "hard_bounce", "soft": "soft_bounce", "complaint": "complaint"}


def _readers(session) -> list[tuple[bounce_corpus.Sample, str]]:
    pairs = [(sample, f"r{n:03}@example.org") for n, sample in enumerate(bounce_corpus.samples())]
    for _sample, address in pairs:
        add_confirmed(session, address)
    session.commit()
    return pairs


def test_each_sample_at_the_verp_address_of_its_mail_acts_on_that_mail_alone(
    campaign_app, session, inbox, maildir
):
    pairs = _readers(session)
    campaign_id = send_campaign(campaign_app, session)
    drop(
        maildir,
        *(
            bounce_corpus.readdress(
                sample, to=received(inbox, address).mail_from, recipient=address
            )
            for sample, address in pairs
        ),
    )
    outcomes = process_maildir(campaign_app, maildir)

    expected = Counter(OUTCOME.get(sample.expect, "ignored") for sample, _ in pairs)
    assert outcomes == dict(expected)
    for sample, address in pairs:
        delivery = delivery_of(session, address, campaign_id)
        subscriber = subscriber_of(session, address)
        reason = suppression.reason_for(session, address)
        seen = (sample.name, sample.expect, delivery.status, subscriber.soft_bounces, reason)
        if sample.expect == "hard":
            assert delivery.status == "bounced" and reason == "hard_bounce", seen
        elif sample.expect == "soft":
            assert delivery.last_error.startswith("soft bounce"), seen
            assert subscriber.soft_bounces == 1 and reason is None, seen
        elif sample.expect == "complaint":
            assert reason == "complaint" and subscriber.status == "unsubscribed", seen
            assert subscriber.unsubscribed_campaign_id == campaign_id, seen
        else:
            assert delivery.status == "sent" and delivery.last_error == "", seen
            assert subscriber.soft_bounces == 0 and reason is None, seen
    # Nobody whose mail no report was about is touched; every message was understood.
    assert all(name.endswith(":2,S") for name in files(maildir, "cur"))
    events = session.scalar(select(BounceEvent.id).where(BounceEvent.campaign_id != campaign_id))
    assert events is None


def test_hard_bounce_statuses_and_diagnostics_reach_the_delivery(
    campaign_app, session, inbox, maildir
):
    """What the console shows: the remote server's answer, from the strict DSN or the text."""
    pairs = [
        (sample, address)
        for sample, address in _readers(session)
        if sample.name in ("dsn_11.txt", "postfix_01.txt", "exim_01.txt", "qmail_03.txt")
    ]
    campaign_id = send_campaign(campaign_app, session)
    for sample, address in pairs:
        verp = received(inbox, address).mail_from
        drop(maildir, bounce_corpus.readdress(sample, to=verp, recipient=address))
    assert process_maildir(campaign_app, maildir) == {"hard_bounce": 4}
    errors = {
        sample.name: delivery_of(session, address, campaign_id).last_error
        for sample, address in pairs
    }
    assert errors["dsn_11.txt"].startswith("hard bounce: 5.1.1")
    assert "550 5.1.1" in errors["postfix_01.txt"]
    assert "553 5.1.1 unknown or illegal user" in errors["exim_01.txt"]
    assert "no mailbox here by that name" in errors["qmail_03.txt"]
    events = session.scalars(select(BounceEvent).order_by(BounceEvent.id)).all()
    assert [(event.kind, event.status) for event in events][:1] == [("hard", "5.1.1")]
    assert all(event.raw and event.source == "mailbox" for event in events)


def test_the_same_samples_at_the_plain_bounce_address_or_a_forged_one_change_nothing(
    campaign_app, session, inbox, maildir
):
    pairs = _readers(session)
    send_campaign(campaign_app, session)
    before = rows(session)
    plain, forged = [], []
    for sample, address in pairs:
        token = received(inbox, address).mail_from.split("+", 1)[1].split("@", 1)[0]
        middle = len(token) // 2
        swapped = "x" if token[middle] != "x" else "y"
        bad = f"bounce+{token[:middle]}{swapped}{token[middle + 1 :]}@mailer.test"
        plain.append(bounce_corpus.readdress(sample, to="bounce@mailer.test", recipient=address))
        for to in (bad, "bounce+x.y@mailer.test"):
            forged.append(bounce_corpus.readdress(sample, to=to, recipient=address))
    drop(maildir, *plain, *forged)
    outcomes = process_maildir(campaign_app, maildir)

    assert rows(session) == before
    ignorable = sum(sample.expect == "ignored" for sample, _ in pairs)
    assert outcomes == {
        "unmatched": len(pairs) - ignorable,
        "ignored": ignorable,  # auto-replies and not-spam at the plain address: nothing to do
        "forged": 2 * len(pairs),
    }
    flagged = [name for name in files(maildir, "cur") if name.endswith(":2,F")]
    assert len(flagged) == 3 * len(pairs) - ignorable
