"""Console sessions live on the server, so they can end (item 4); pages that show what only
their visitor may see are never cached, and https brings HSTS (item 13).

The attack: a copy of the session cookie kept working for 31 days after
logout. A session is now a row: logout, a password change and a deactivation
delete it, and it ends by itself when idle or old.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from mailer.models import AdminSession
from tests.admin_helpers import login, make_account, post, signed_in
from tests.helpers import add_confirmed
from tests.security.flows import cli

COOKIE = "session"


def _stolen_copy(app, client):
    """Another browser with a copy of `client`'s session cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return thief


def _sessions(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(AdminSession))


def test_logout_ends_the_session_for_every_copy_of_its_cookie(app, session):
    client = signed_in(app)
    thief = _stolen_copy(app, client)
    assert thief.get("/admin/").status_code == 200

    post(client, "/admin/logout")

    answer = thief.get("/admin/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/admin/login")
    assert _sessions(session) == 0


def test_a_password_change_or_a_deactivation_ends_every_session(app, session):
    make_account(app, "boss@example.com")
    editor = signed_in(app, "editor", "ed@example.com")
    laptop, phone = app.test_client(), app.test_client()
    assert login(laptop).status_code == 302 and login(phone).status_code == 302
    copy = _stolen_copy(app, laptop)

    new_password = cli(app, "admin", "set-password", "boss@example.com", input="another long one\n")
    assert new_password.exit_code == 0, new_password.output
    for browser in (laptop, phone, copy):
        assert browser.get("/admin/").status_code == 302

    assert editor.get("/admin/").status_code == 200
    boss = app.test_client()
    assert login(boss, password="another long one").status_code == 302
    answer = post(boss, "/admin/accounts/2/deactivate")
    assert answer.status_code == 303
    assert editor.get("/admin/").status_code == 302
    assert _sessions(session) == 1  # the boss's own


def test_an_idle_or_old_session_ends_by_itself(make_app, session):
    app = make_app(admin_idle_minutes=30, admin_session_hours=12)
    client = signed_in(app)

    def age(**span: float) -> None:
        session.expire_all()
        row = session.scalars(select(AdminSession)).one()
        if "idle" in span:
            row.last_seen_at -= timedelta(minutes=span["idle"])
        if "old" in span:
            row.created_at -= timedelta(hours=span["old"])
            row.last_seen_at = row.created_at + timedelta(hours=span["old"])
        session.commit()

    age(idle=29)
    assert client.get("/admin/").status_code == 200
    age(idle=31)
    assert client.get("/admin/").status_code == 302
    assert _sessions(session) == 0

    client = signed_in(app, email="second@example.com")
    age(old=13)  # used a minute ago, but logged in 13 hours ago
    assert client.get("/admin/").status_code == 302


def test_console_token_and_password_pages_are_never_cached(make_app, session):
    app = make_app(base_url="https://news.example.com")
    add_confirmed(session, "ann@example.org")
    session.commit()
    client = signed_in(app)
    shown = post(client, "/admin/accounts", {"email": "new@example.com", "role": "editor"})
    assert "shown this once only" in shown.text

    pages = [
        shown,
        client.get("/admin/"),
        client.get("/admin/subscribers/1"),
        app.test_client().get("/admin/login"),
        app.test_client().get("/confirm/forged-token"),
        app.test_client().get("/preferences/forged-token"),
        app.test_client().get("/u/1-0-aaaaaaaaaaaaaaaa"),
        app.test_client().get("/preferences"),
    ]
    for page in pages:
        assert page.headers["Cache-Control"] == "no-store", page.request.path
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert "script-src 'self';" in page.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    plain = make_app().test_client().get("/admin/login")
    assert "Strict-Transport-Security" not in plain.headers  # http: no HSTS promise
