"""Subscribers in the console: the count, orders, bulk actions, one person's changes."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from mailer import clock
from mailer.models import (
    AuditEntry,
    Consent,
    MailKind,
    Subscriber,
    SubscriberTopic,
    Suppression,
    TransactionalMail,
)
from tests.admin_helpers import post, signed_in
from tests.helpers import add_confirmed


def _pending(session, email: str) -> int:
    now = clock.now() - timedelta(days=2)
    subscriber = Subscriber(email=email, status="pending", created_at=now, last_signup_at=now)
    session.add(subscriber)
    session.flush()
    session.add(
        Consent(
            subscriber_id=subscriber.id,
            requested_at=now,
            ip="192.0.2.1",
            form="page",
            wording="...",
            topics="article",
        )
    )
    session.flush()
    return subscriber.id


def _list(app: Flask) -> dict[str, Subscriber]:
    with app.extensions["mailer.sessionmaker"]() as session:
        rows = session.scalars(select(Subscriber)).all()
        for row in rows:
            _ = row.topic_names
        return {row.email: row for row in rows}


def _readers(app: Flask) -> None:
    with app.extensions["mailer.sessionmaker"]() as session:
        for name in ("carol", "alice", "bob"):
            add_confirmed(session, f"{name}@example.org", ("article",))
        _pending(session, "pete@example.org")
        session.commit()


def test_the_count_and_the_orders(app: Flask) -> None:
    client = signed_in(app)
    _readers(app)
    page = client.get("/admin/subscribers").text
    assert re.search(r'id="result-count" role="status">4 subscribers', page)
    confirmed = client.get("/admin/subscribers?state=confirmed").text
    assert re.search(r'id="result-count" role="status">3 subscribers match', confirmed)

    def order(sort: str) -> list[str]:
        text = client.get(f"/admin/subscribers?sort={sort}").text
        return re.findall(r">(\w+)@example\.org</a>", text)

    assert order("email") == ["alice", "bob", "carol", "pete"]
    assert order("newest") == ["pete", "bob", "alice", "carol"]
    assert order("oldest") == ["carol", "alice", "bob", "pete"]


def test_bulk_actions_on_ticked_rows_and_on_the_whole_filter(app: Flask) -> None:
    client = signed_in(app)
    _readers(app)
    ids = {email: row.id for email, row in _list(app).items()}

    answer = post(
        client,
        "/admin/subscribers/bulk",
        {
            "scope": "selected",
            "action": "add_topic",
            "bulk_topic": "video",
            "ids": [str(ids["alice@example.org"]), str(ids["pete@example.org"])],
        },
        follow_redirects=True,
    )
    assert "Add a topic: 1 changed, 1 left as they were." in answer.text  # pete is pending
    assert _list(app)["alice@example.org"].topic_names == ["article", "video"]

    post(
        client,
        "/admin/subscribers/bulk",
        {
            "scope": "filter",
            "state": "confirmed",
            "action": "remove_topic",
            "bulk_topic": "article",
        },
    )
    assert all(row.topic_names in ([], ["video"]) for row in _list(app).values())

    # Destructive: asked again with the count, done only when confirmed.
    asked = post(
        client,
        "/admin/subscribers/bulk",
        {"scope": "filter", "state": "confirmed", "action": "unsubscribe"},
    )
    assert asked.status_code == 200 and "Unsubscribe: 3 subscribers?" in asked.text
    assert {row.status for row in _list(app).values()} == {"confirmed", "pending"}
    post(
        client,
        "/admin/subscribers/bulk",
        {"scope": "filter", "state": "confirmed", "action": "unsubscribe", "confirmed": "yes"},
    )
    statuses = {email: row.status for email, row in _list(app).items()}
    assert (
        statuses["alice@example.org"] == "unsubscribed"
        and statuses["pete@example.org"] == "pending"
    )

    post(
        client,
        "/admin/subscribers/bulk",
        {
            "scope": "selected",
            "action": "delete",
            "confirmed": "yes",
            "ids": [str(ids["bob@example.org"])],
        },
    )
    assert "bob@example.org" not in _list(app)
    with app.extensions["mailer.sessionmaker"]() as session:
        assert (
            session.scalar(select(Suppression.reason).where(Suppression.email.is_(None)))
            == "erased"
        )
        details = session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action.like("subscribers.%"))
        ).all()
    assert len(details) == 4 and not any("@" in detail for detail in details)


def test_resend_the_confirmation_to_pending_ones_within_the_limits(app: Flask) -> None:
    client = signed_in(app)
    _readers(app)
    pete = _list(app)["pete@example.org"].id
    answer = post(client, f"/admin/subscribers/{pete}/resend_confirmation", follow_redirects=True)
    assert "The confirmation mail is on its way again." in answer.text
    again = post(client, f"/admin/subscribers/{pete}/resend_confirmation", follow_redirects=True)
    assert "Not sent: the address had a confirmation mail within the hour" in again.text
    with app.extensions["mailer.sessionmaker"]() as session:
        mails = session.scalars(select(TransactionalMail.kind)).all()
    assert mails == [MailKind.CONFIRM]
    bulk = post(
        client,
        "/admin/subscribers/bulk",
        {"scope": "filter", "action": "resend_confirmation"},
        follow_redirects=True,
    )
    assert "0 changed, 4 left as they were." in bulk.text  # confirmed ones, and pete's limit


def test_one_person_s_name_topics_frequency_and_unsubscribe(app: Flask) -> None:
    client = signed_in(app)
    _readers(app)
    alice = _list(app)["alice@example.org"].id
    page = client.get(f"/admin/subscribers/{alice}").text
    assert "Change their subscription" in page and "Resend confirmation" not in page
    post(
        client,
        f"/admin/subscribers/{alice}/profile",
        {"name": "Alice Liddell", "topics": ["video", "webinar"], "frequency": "weekly"},
    )
    row = _list(app)["alice@example.org"]
    assert (row.name, row.topic_names, row.frequency) == (
        "Alice Liddell",
        ["video", "webinar"],
        "weekly",
    )
    post(client, f"/admin/subscribers/{alice}/unsubscribe")
    row = _list(app)["alice@example.org"]
    assert (row.status, row.unsubscribe_channel) == ("unsubscribed", "admin")
    with app.extensions["mailer.sessionmaker"]() as session:
        entries = session.execute(
            select(AuditEntry.action, AuditEntry.detail).where(
                AuditEntry.target == f"subscriber {alice}"
            )
        ).all()
        assert session.scalar(select(SubscriberTopic.topic).limit(1)) is not None
    assert [tuple(entry) for entry in entries] == [
        ("subscriber.edit", "changed name, topics, frequency"),
        ("subscriber.unsubscribe", ""),
    ]
