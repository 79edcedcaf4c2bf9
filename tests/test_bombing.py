"""Subscription bombing: many signups for one address, from many IPs, make one mail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from mailer.models import Consent, Subscriber, TransactionalMail
from tests.helpers import move_back, post_signup, wait_until


def test_twenty_signups_from_twenty_ips_send_one_mail(app, inbox, worker, session):
    def sign_up(number: int) -> int:
        client = app.test_client()
        response = post_signup(client, app, email="victim@example.org", ip=f"198.51.100.{number}")
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:  # concurrent, as a botnet would
        statuses = list(pool.map(sign_up, range(1, 21)))
    assert statuses == [302] * 20  # every sender sees the same page

    inbox.wait_for("victim@example.org")
    wait_until(
        lambda: (
            session.scalar(
                select(func.count())
                .select_from(TransactionalMail)
                .where(TransactionalMail.status == "queued")
            )
            == 0
        )
    )
    assert len(inbox.to("victim@example.org")) == 1
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
    assert session.scalar(select(func.count()).select_from(TransactionalMail)) == 1
    assert session.scalar(select(func.count()).select_from(Consent)) == 1


def test_at_most_three_mails_a_day(app, client, session):
    sent_hours_ago = []
    for hours_ago in (5, 3, 1.5):
        post_signup(client, app, email="victim@example.org")
        newest = select(func.max(TransactionalMail.id)).scalar_subquery()
        move_back(
            session,
            TransactionalMail.created_at,
            timedelta(hours=hours_ago),
            TransactionalMail.id == newest,
        )
        sent_hours_ago.append(hours_ago)
    # Three mails in the last day, none in the last hour: the fourth is still held back.
    post_signup(client, app, email="victim@example.org")
    assert session.scalar(select(func.count()).select_from(TransactionalMail)) == 3


def test_a_new_mail_after_an_hour(app, client, session):
    post_signup(client, app, email="reader@example.org")
    post_signup(client, app, email="reader@example.org")
    assert session.scalar(select(func.count()).select_from(TransactionalMail)) == 1
    move_back(session, TransactionalMail.created_at, timedelta(minutes=61))
    post_signup(client, app, email="reader@example.org")
    assert session.scalar(select(func.count()).select_from(TransactionalMail)) == 2
