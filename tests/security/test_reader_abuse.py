"""The forms that make us mail someone are limited per client IP and per address (item 8).

The attack: 25 "email me a link" requests from one client, each for another
subscriber, all answered and all mailed. Signup, "email me a link" and the
change-of-address form now share one per-IP budget (MAILER_SIGNUP_LIMIT), and
each target address gets at most one such mail an hour, three a day.
"""

from __future__ import annotations

from sqlalchemy import func, select

from mailer import tokens
from mailer.models import Subscriber, TransactionalMail
from tests.helpers import add_confirmed, hidden, post_signup
from tests.security.flows import ask_for_link


def _mails(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(TransactionalMail))


def _preferences_link(app, session, email: str) -> str:
    row = session.scalar(select(Subscriber).where(Subscriber.email == email))
    token = tokens.make(
        app.extensions["mailer.settings"].secret_keys,
        tokens.Purpose.PREFERENCES,
        row.id,
        bind=row.token_key,
    )
    return f"/preferences/{token}"


def test_email_me_a_link_is_limited_per_client_ip(make_app, session):
    app = make_app(signup_limit="5/hour")
    for number in range(8):
        add_confirmed(session, f"reader{number}@example.org")
    session.commit()
    client = app.test_client()

    answers = [ask_for_link(client, f"reader{n}@example.org").status_code for n in range(8)]

    assert answers == [200] * 5 + [429] * 3
    assert _mails(session) == 5
    assert ask_for_link(client, "reader7@example.org", ip="203.0.113.5").status_code == 200
    assert _mails(session) == 6


def test_the_change_of_address_form_is_limited_per_client_ip(make_app, session):
    app = make_app(signup_limit="3/hour")
    add_confirmed(session, "ann@example.org")
    session.commit()
    client = app.test_client()
    path = _preferences_link(app, session, "ann@example.org")
    token = hidden(client.get(path).text, "csrf_token")

    answers = [
        client.post(
            path + "/address",
            data={"csrf_token": token, "address-email": f"new{n}@example.org"},
        ).status_code
        for n in range(5)
    ]

    assert answers == [200, 200, 200, 429, 429]
    assert _mails(session) == 3
    session.expire_all()
    assert session.scalars(select(Subscriber.email)).one() == "ann@example.org"


def test_the_mailing_forms_share_one_budget_per_client(make_app, session):
    app = make_app(signup_limit="4/hour")
    add_confirmed(session, "ann@example.org")
    session.commit()
    client = app.test_client()
    assert post_signup(client, app, email="one@example.org").status_code == 302
    assert post_signup(client, app, email="two@example.org").status_code == 302
    assert ask_for_link(client, "ann@example.org").status_code == 200
    assert post_signup(client, app, email="three@example.org").status_code == 302

    assert ask_for_link(client, "ann@example.org").status_code == 429
    assert post_signup(client, app, email="four@example.org").status_code == 429
    assert _mails(session) == 4


def test_one_address_gets_one_link_an_hour_whoever_asks(app, session):
    add_confirmed(session, "ann@example.org")
    session.commit()
    answers = [
        ask_for_link(app.test_client(), "ann@example.org", ip=f"203.0.113.{n}") for n in range(6)
    ]
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.text for answer in answers}) == 1  # the same page every time
    assert _mails(session) == 1
