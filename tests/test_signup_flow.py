"""The double opt-in flow end to end: real database, Redis broker, Celery worker and relay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.models import Consent, Subscriber, Suppression, TransactionalMail
from tests.conftest import running_worker
from tests.helpers import (
    CONFIRM_LINK,
    NOT_ME_LINK,
    PREFERENCES_LINK,
    html_part,
    link,
    move_back,
    path_of,
    post_signup,
    text_part,
)


@pytest.fixture
def flow_app(app):
    """The same flow against PostgreSQL and against the embedded default (conftest runs both)."""
    return app


def test_signup_confirm_welcome(flow_app, inbox):
    app, client = flow_app, flow_app.test_client()
    with running_worker(app):
        response = post_signup(
            client,
            app,
            email="Ann.Reader@Example.org",
            name="Ann",
            topics=("article", "webinar"),
            ip="203.0.113.7",
        )
        assert response.status_code == 302
        assert response.headers["Location"] == "/check-inbox"
        assert "Check your inbox" in client.get("/check-inbox").get_data(as_text=True)

        [received] = inbox.wait_for("ann.reader@example.org")
        mail = received.message
        assert mail["From"] == "Health Notices <notices@mailer.test>"
        assert mail["To"] == "ann.reader@example.org"
        assert mail["Subject"] == "Please confirm your subscription to Health Notices"
        assert mail["Message-ID"].endswith("@mailer.test>")
        assert mail["Date"] is not None
        assert mail.get_content_type() == "multipart/alternative"
        assert [part.get_content_type() for part in mail.iter_parts()] == [
            "text/plain",
            "text/html",
        ]
        assert "articles and webinars" in text_part(mail)
        assert "1 Test Street, Testville" in text_part(mail)
        assert 'href="http://mailer.test/confirm/' in html_part(mail)
        assert '<td class="head" style=' in html_part(mail)  # CSS inlined for mail clients

        confirm_path = path_of(link(CONFIRM_LINK, mail))
        page = client.get(confirm_path)  # what a mail scanner does
        assert page.status_code == 200 and "Confirm my subscription" in page.get_data(as_text=True)
        with app.extensions["mailer.sessionmaker"]() as session:
            subscriber = session.scalars(select(Subscriber)).one()
            assert subscriber.status == "pending"  # the GET confirmed nothing

        csrf = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
        confirmed = client.post(
            confirm_path,
            data={"csrf_token": csrf.split('"')[0]},
            environ_base={"REMOTE_ADDR": "198.51.100.4"},
        )
        assert confirmed.status_code == 200
        assert "You're subscribed" in confirmed.get_data(as_text=True)

        [welcome] = inbox.wait_for("ann.reader@example.org", count=2)[1:]
        assert welcome.message["Subject"] == "Welcome to Health Notices"
        assert "Hello Ann," in text_part(welcome.message)
        assert PREFERENCES_LINK.search(text_part(welcome.message))

    with app.extensions["mailer.sessionmaker"]() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.email == "ann.reader@example.org"
        assert subscriber.status == "confirmed"
        assert subscriber.topic_names == ["article", "webinar"]
        consent = session.scalars(select(Consent)).one()
        assert consent.ip == "203.0.113.7" and consent.confirmed_ip == "198.51.100.4"
        assert consent.confirmed_at is not None and consent.form == "page"
        assert "unsubscribe at any time" in consent.wording
        assert consent.topics == "article,webinar"
        mails = session.scalars(select(TransactionalMail).order_by(TransactionalMail.id)).all()
        assert [(m.kind, m.status) for m in mails] == [("confirm", "sent"), ("welcome", "sent")]
        assert mails[0].message_id == received.message["Message-ID"]


def _confirm(client, mail):
    path = path_of(link(CONFIRM_LINK, mail))
    html = client.get(path).get_data(as_text=True)
    csrf = html.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    return client.post(path, data={"csrf_token": csrf})


def test_confirmation_mail_echoes_nothing_the_sender_typed(app, client, inbox, worker):
    # Bots use signup forms to push their text into strangers' inboxes.
    post_signup(client, app, email="victim@example.org", name="Cheap pills at spam.example")
    [received] = inbox.wait_for("victim@example.org")
    raw = received.message.as_string()
    assert "spam.example" not in raw and "Cheap pills" not in raw
    assert received.message["To"] == "victim@example.org"


def test_replayed_confirm_changes_nothing(app, client, inbox, worker, session):
    post_signup(client, app, email="bob@example.org", topics=("video",))
    mail = inbox.wait_for("bob@example.org")[0].message
    assert "You're subscribed" in _confirm(client, mail).get_data(as_text=True)
    subscriber = session.scalars(select(Subscriber)).one()
    confirmed_at = subscriber.confirmed_at

    path = path_of(link(CONFIRM_LINK, mail))
    assert "Already confirmed" in client.get(path).get_data(as_text=True)
    csrf = client.get("/").get_data(as_text=True).split('name="csrf_token" type="hidden" value="')
    again = client.post(path, data={"csrf_token": csrf[1].split('"')[0]})  # the POST replayed
    assert again.status_code == 200 and "Already confirmed" in again.get_data(as_text=True)
    session.expire_all()
    assert session.scalars(select(Subscriber)).one().confirmed_at == confirmed_at
    inbox.wait_for("bob@example.org", count=2)  # the welcome mail, and no second one
    assert len(session.scalars(select(TransactionalMail)).all()) == 2


def test_resignup_never_downgrades_confirmed_nor_changes_topics(
    app, client, inbox, worker, session
):
    post_signup(client, app, email="cat@example.org", name="Cat", topics=("article",))
    _confirm(client, inbox.wait_for("cat@example.org")[0].message)
    inbox.wait_for("cat@example.org", count=2)  # welcome
    # An hour later someone signs the address up again with other topics and name.
    move_back(session, TransactionalMail.created_at, timedelta(hours=2))
    response = post_signup(
        client, app, email="cat@example.org", name="Mallory", topics=("video", "webinar")
    )
    assert response.headers["Location"] == "/check-inbox"  # the same page as for a new address

    already = inbox.wait_for("cat@example.org", count=3)[2].message
    assert already["Subject"] == "You are already subscribed to Health Notices"
    assert PREFERENCES_LINK.search(text_part(already))
    assert "Mallory" not in already.as_string()
    session.expire_all()
    subscriber = session.scalars(select(Subscriber)).one()
    assert (subscriber.status, subscriber.name, subscriber.topic_names) == (
        "confirmed",
        "Cat",
        ["article"],
    )


def test_not_me_cancels_and_blocks_further_mail(app, client, inbox, worker, session):
    post_signup(client, app, email="dan@example.org")
    mail = inbox.wait_for("dan@example.org")[0].message
    path = path_of(link(NOT_ME_LINK, mail))
    html = client.get(path).get_data(as_text=True)
    assert "Didn't sign up?" in html
    assert session.scalars(select(Subscriber)).one()  # the GET removed nothing
    csrf = html.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    done = client.post(path, data={"csrf_token": csrf})
    assert "Signup cancelled" in done.get_data(as_text=True)

    session.expire_all()
    assert session.scalars(select(Subscriber)).all() == []
    assert session.scalars(select(Suppression.reason)).all() == ["not_me"]
    # Days later another signup for the address sends nothing.
    session.execute(TransactionalMail.__table__.delete())
    session.commit()
    assert post_signup(client, app, email="dan@example.org").status_code == 302
    assert session.scalars(select(TransactionalMail)).all() == []
    # The confirmation link of the cancelled signup is dead now.
    assert "This link is not valid" in _confirm_page(client, mail)


def _confirm_page(client, mail):
    return client.get(path_of(link(CONFIRM_LINK, mail))).get_data(as_text=True)


def test_welcome_mail_can_be_turned_off(make_app, inbox, session):
    app = make_app(welcome_mail=False)
    client = app.test_client()
    with running_worker(app):
        post_signup(client, app, email="eve@example.org")
        assert "You're subscribed" in _confirm(
            client, inbox.wait_for("eve@example.org")[0].message
        ).get_data(as_text=True)
    assert [m.kind for m in session.scalars(select(TransactionalMail))] == ["confirm"]
