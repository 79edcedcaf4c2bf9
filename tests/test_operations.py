"""Health check, purge of unconfirmed signups, the requeue of lost tasks, migrations."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import func, select, update

from mailer import clock, subscriptions
from mailer.cli import alembic_config, upgrade
from mailer.models import Consent, Subscriber, TransactionalMail
from mailer.sending import transactional
from tests.conftest import running_worker
from tests.helpers import free_port, post_signup


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_fails_when_the_broker_is_down(make_app):
    app = make_app(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "failing" and body["database"] == "ok"
    assert body["broker"].startswith("error")


def test_signup_survives_a_broker_outage_and_is_requeued(make_app, smtp, session, caplog):
    inbox, _port = smtp
    inbox.reset()
    down = make_app(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    response = post_signup(down.test_client(), down, email="ann@example.org")
    assert response.status_code == 302  # the reader is not troubled by our broker
    mail = session.scalars(select(TransactionalMail)).one()
    assert mail.status == "queued"

    # Ten minutes later the beat's requeue task finds the mail no worker ever tried.
    later = clock.now() + timedelta(minutes=11)
    assert transactional.never_tried(session, now=later) == [mail.id]
    up = make_app()
    with running_worker(up), up.app_context():
        from worker import tasks

        session.execute(
            update(TransactionalMail).values(
                created_at=TransactionalMail.created_at - timedelta(minutes=11)
            )
        )
        session.commit()
        assert tasks.requeue_unsent_mail.apply().result == 1
        inbox.wait_for("ann@example.org")


def test_purge_removes_week_old_unconfirmed_and_keeps_the_rest(app, client, session):
    post_signup(client, app, email="old@example.org")
    post_signup(client, app, email="new@example.org")
    session.execute(
        update(Subscriber)
        .where(Subscriber.email == "old@example.org")
        .values(last_signup_at=clock.now() - timedelta(days=8))
    )
    session.commit()
    assert subscriptions.purge_unconfirmed(session, now=clock.now()) == 1
    session.commit()
    assert session.scalars(select(Subscriber.email)).all() == ["new@example.org"]
    assert session.scalar(select(func.count()).select_from(Consent)) == 1


def test_purge_task_runs_in_the_worker(app, client, session):
    from worker import tasks

    post_signup(client, app, email="old@example.org")
    session.execute(update(Subscriber).values(last_signup_at=clock.now() - timedelta(days=8)))
    session.commit()
    with app.app_context():
        assert tasks.purge_unconfirmed.apply().result == 1
    assert session.scalars(select(Subscriber)).all() == []


def test_migrations_go_down_and_up_again(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = sa.create_engine(url)
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    upgrade(url)
    assert "subscriber" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_security_headers_on_pages(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_embed_form_may_be_framed_and_posts_without_csrf(app, client, session):
    page = client.get("/embed")
    assert "X-Frame-Options" not in page.headers
    assert page.headers["Content-Security-Policy"].endswith("frame-ancestors *")
    assert 'name="csrf_token"' not in page.get_data(as_text=True)
    response = post_signup(client, app, email="ann@example.org", path="/embed")
    assert response.headers["Location"] == "/embed/thanks"
    consent = session.scalars(select(Consent)).one()
    assert consent.form == "embed"
