"""Sending transactional mail through a real relay: retries, permanent failures, SMTPUTF8."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.models import TransactionalMail
from mailer.sending import get_mailroom
from tests.conftest import running_worker
from tests.helpers import free_port, post_signup, wait_until
from tests.smtp_sink import start_sink


def _settled_mail(session):
    """The one mail row, once the worker has finished with it."""

    def settled():
        session.expire_all()
        mail = session.scalars(select(TransactionalMail)).one()
        return mail if mail.status != "queued" else None

    return wait_until(settled)


def test_temporary_failure_is_retried_and_arrives_once(app, client, inbox, worker, session):
    inbox.answer_next("451 4.7.1 Greylisted, try again later")
    post_signup(client, app, email="ann@example.org")
    assert len(inbox.wait_for("ann@example.org")) == 1
    mail = _settled_mail(session)
    assert (mail.status, mail.attempts) == ("sent", 2)
    assert inbox.data_attempts == 2
    assert len(inbox.to("ann@example.org")) == 1


def test_permanent_failure_is_recorded_and_not_retried(app, client, inbox, worker, session):
    inbox.answer_next("550 5.1.1 No such user here")
    post_signup(client, app, email="nobody@example.org")
    mail = _settled_mail(session)
    assert mail.status == "failed"
    assert mail.attempts == 1
    assert "550" in mail.last_error and "No such user" in mail.last_error
    assert inbox.data_attempts == 1 and inbox.messages == []


def test_relay_down_retries_then_records_failure(make_app, session):
    app = make_app(smtp_url=f"smtp://127.0.0.1:{free_port()}", retry_max=2)
    client = app.test_client()
    with running_worker(app):
        post_signup(client, app, email="ann@example.org")
        mail = _settled_mail(session)
    assert mail.status == "failed"
    assert mail.attempts == 3  # the first try and two retries
    assert "Connection" in mail.last_error


def test_relay_back_up_delivers(make_app, smtp, session):
    inbox, port = smtp
    inbox.reset()
    inbox.answer_next("421 4.3.2 Service shutting down", "451 4.3.0 Local error")
    app = make_app(smtp_url=f"smtp://127.0.0.1:{port}")
    with running_worker(app):
        post_signup(app.test_client(), app, email="ann@example.org")
        inbox.wait_for("ann@example.org")
        mail = _settled_mail(session)
    assert (mail.status, mail.attempts) == ("sent", 3)
    assert len(inbox.to("ann@example.org")) == 1


def test_internationalised_mailbox_goes_with_smtputf8(app, client, inbox, worker):
    post_signup(client, app, email="jörg@bücher.example")
    [received] = inbox.wait_for("jörg@bücher.example")
    assert "SMTPUTF8" in received.mail_options
    assert received.message["To"] == "jörg@bücher.example"


def test_internationalised_domain_goes_as_punycode(app, client, inbox, worker):
    post_signup(client, app, email="ann@bücher.example")
    [received] = inbox.wait_for("ann@xn--bcher-kva.example")
    assert "SMTPUTF8" not in received.mail_options
    assert received.message["To"] == "ann@xn--bcher-kva.example"


def test_one_connection_carries_many_messages(app, inbox):
    from mailer.sending.transport import SMTPTransport

    composer = get_mailroom(app).composer
    transport: SMTPTransport = get_mailroom(app).transport
    outgoing = [
        composer.build(
            "welcome",
            to=f"r{n}@example.org",
            subject="Hi",
            now=_now(),
            context={"name": "", "topics": ["video"], "preferences_url": "x"},
        )
        for n in range(5)
    ]
    results = transport.send(outgoing[:3]) + transport.send(outgoing[3:])
    assert [result.error for result in results] == [None] * 5
    assert len(inbox.messages) == 5
    assert inbox.connections == 1  # kept open between calls, too


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_relay_with_authentication(make_app):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticate(_server, _session, _envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"mailer",
            b"p@ss word",
        )
        return AuthResult(success=ok, handled=False)

    port = free_port()
    inbox, controller = start_sink(
        port, authenticator=authenticate, auth_required=True, auth_require_tls=False
    )
    try:
        good = make_app(smtp_url=f"smtp://mailer:p%40ss%20word@127.0.0.1:{port}")
        with running_worker(good):
            post_signup(good.test_client(), good, email="ann@example.org")
            inbox.wait_for("ann@example.org")
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_wrong_relay_password_is_a_recorded_failure(make_app, session):
    from aiosmtpd.smtp import AuthResult

    port = free_port()
    _inbox, controller = start_sink(
        port,
        authenticator=lambda *_: AuthResult(success=False, handled=False),
        auth_required=True,
        auth_require_tls=False,
    )
    try:
        app = make_app(smtp_url=f"smtp://mailer:wrong@127.0.0.1:{port}")
        with running_worker(app):
            post_signup(app.test_client(), app, email="ann@example.org")
            mail = _settled_mail(session)
    finally:
        controller.stop()
    assert mail.status == "failed"
    assert "535" in mail.last_error  # authentication failed: permanent, not retried forever


def _now():
    from mailer import clock

    return clock.now()
