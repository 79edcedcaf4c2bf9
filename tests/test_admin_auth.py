"""Logging in to the console: sessions, roles, rate limits, CSRF, headers and the audit trail."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import select

from mailer import admins, clock
from mailer.models import AdminUser, AuditEntry
from tests.admin_helpers import PASSWORD, csrf_token, login, make_account, post, signed_in

EVERY_ROLE_PAGE = [
    "/admin/",
    "/admin/notices",
    "/admin/notices/new",
    "/admin/feeds",
    "/admin/campaigns",
    "/admin/campaigns/new",
]
ADMIN_ONLY_PAGES = ["/admin/accounts", "/admin/audit", "/admin/subscribers"]


def _audit(app: Flask) -> list[tuple[str, str, str]]:
    with app.extensions["mailer.sessionmaker"]() as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id)
        )
        return [tuple(row) for row in rows]


def test_login_opens_the_console_and_logout_closes_it(app: Flask) -> None:
    make_account(app, "Boss@Example.com")
    client = app.test_client()
    answer = login(client, "boss@example.com")  # the address is matched case-blind
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/"
    page = client.get("/admin/").get_data(as_text=True)
    assert "<h1>Dashboard</h1>" in page and "boss@example.com" in page

    answer = post(client, "/admin/logout")
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/login"
    assert client.get("/admin/").status_code == 302  # the session is gone
    assert [action for _, action, _ in _audit(app)] == ["login", "logout"]
    with app.extensions["mailer.sessionmaker"]() as session:
        assert session.scalar(select(AdminUser.last_login_at)) is not None


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("boss@example.com", "wrong password, long enough"),
        ("nobody@example.com", PASSWORD),
        ("not an address", PASSWORD),
        ("boss@example.com", "x" * 5000),
    ],
)
def test_a_failed_login_says_the_same_whatever_was_wrong_and_opens_nothing(
    app: Flask, email: str, password: str
) -> None:
    make_account(app)
    client = app.test_client()
    answer = login(client, email, password)
    assert answer.status_code == 401
    page = answer.get_data(as_text=True)
    assert "That email address and password do not match an active account." in page
    assert 'aria-invalid="true"' in page
    assert f'value="{email}"' in page  # kept to correct; the password is not
    assert client.get("/admin/").status_code == 302
    # Audited as the account it names; an unknown name (a stranger's address, a
    # password typed into the wrong field) is never written down.
    actor = email if email == "boss@example.com" else "(not an account)"
    assert _audit(app) == [(actor, "login.failed", "")]


def test_a_deactivated_account_cannot_log_in_and_its_open_session_ends(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    make_account(app, "boss@example.com")
    with app.extensions["mailer.sessionmaker"]() as session:
        editor = admins.find(session, "ed@example.com")
        assert editor is not None
        admins.deactivate(session, editor.id)
        session.commit()
    answer = client.get("/admin/notices")
    assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]
    assert login(app.test_client(), "ed@example.com").status_code == 401


def test_a_password_change_ends_the_sessions_made_with_the_old_one(app: Flask) -> None:
    laptop = signed_in(app)
    with app.extensions["mailer.sessionmaker"]() as session:
        account = admins.find(session, "boss@example.com")
        assert account is not None
        admins.set_password(session, account.id, "a brand new password")
        session.commit()
    assert laptop.get("/admin/").status_code == 302
    assert login(app.test_client(), password="a brand new password").status_code == 302


def test_every_console_page_sends_a_logged_out_visitor_to_the_login(app: Flask) -> None:
    client = app.test_client()
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("admin.")]
    assert len(rules) > 20
    for rule in rules:
        if rule.endpoint in {"admin.login", "admin.login_code"} or rule.endpoint.startswith(
            "admin.static"
        ):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", "1", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            data = {"csrf_token": csrf_token(client)} if method == "POST" else None
            answer = client.open(path, method=method, data=data)
            assert answer.status_code == 302, (method, path, answer.status_code)
            location = answer.headers["Location"]
            assert location.startswith("/admin/login?next="), (method, path, location)
    assert _audit(app) == []


def test_login_brings_the_visitor_back_to_the_page_asked_for_but_never_off_site(
    app: Flask,
) -> None:
    make_account(app)
    client = app.test_client()
    answer = client.get("/admin/campaigns?before=5")
    assert answer.headers["Location"] == "/admin/login?next=%2Fadmin%2Fcampaigns%3Fbefore%3D5"
    assert login(client, next="/admin/campaigns?before=5").headers["Location"] == (
        "/admin/campaigns?before=5"
    )
    for evil in ("https://evil.example/admin", "//evil.example/admin", "/preferences/x"):
        other = app.test_client()
        assert login(other, next=evil).headers["Location"] == "/admin/"


def test_an_editor_is_refused_the_admin_pages(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    for path in EVERY_ROLE_PAGE:
        assert client.get(path).status_code == 200, path
    for path in ADMIN_ONLY_PAGES:
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "This page is for admins" in answer.get_data(as_text=True)
    for path in ("/admin/accounts", "/admin/accounts/1/deactivate"):
        assert post(client, path, {"email": "new@example.com", "role": "admin"}).status_code == 403
    page = client.get("/admin/").get_data(as_text=True)
    assert "/admin/accounts" not in page and "/admin/audit" not in page  # not offered either
    with app.extensions["mailer.sessionmaker"]() as session:
        assert (
            session.scalar(select(AdminUser.id).where(AdminUser.email == "new@example.com")) is None
        )


def test_an_admin_sees_every_page(app: Flask) -> None:
    client = signed_in(app)
    for path in EVERY_ROLE_PAGE + ADMIN_ONLY_PAGES:
        assert client.get(path).status_code == 200, path


def test_failed_logins_are_rate_limited_per_client(make_app: Callable[..., Flask]) -> None:
    app = make_app(admin_login_limit="3/minute")
    make_account(app)
    make_account(app, "ed@example.com", "editor")
    client = app.test_client()
    for name in ("boss@example.com", "ed@example.com", "nobody@example.com"):
        assert login(client, name, password="wrong password 123").status_code == 401
    answer = login(client)  # a client that failed this often waits, whatever account
    assert answer.status_code == 429
    assert "Too many attempts" in answer.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    # Another client is not slowed down (tests/security/test_console_logins.py has the rest).
    assert login(app.test_client(), "ed@example.com", ip="203.0.113.10").status_code == 302


def test_successful_logins_do_not_count_against_the_limit(make_app: Callable[..., Flask]) -> None:
    app = make_app(admin_login_limit="2/minute")
    make_account(app)
    for _ in range(4):
        assert login(app.test_client()).status_code == 302


def test_forms_without_a_csrf_token_are_refused(app: Flask) -> None:
    make_account(app)
    client = app.test_client()
    answer = client.post("/admin/login", data={"email": "boss@example.com", "password": PASSWORD})
    assert answer.status_code == 400
    assert "The CSRF token is missing." in answer.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302  # not logged in

    assert login(client).status_code == 302
    answer = client.post(
        "/admin/notices/new",
        data={"kind": "article", "title": "Forged", "url": "https://site.example/f"},
    )
    assert answer.status_code == 400
    forged = client.post("/admin/logout", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert client.get("/admin/").status_code == 200  # still logged in
    assert [action for _, action, _ in _audit(app)] == ["login"]


def test_session_cookie_is_httponly_samesite_and_secure_on_https(
    make_app: Callable[..., Flask],
) -> None:
    for base_url, secure in (("https://news.example.com", True), ("http://mailer.test", False)):
        app = make_app(base_url=base_url)
        make_account(app, f"boss{secure}@example.com")
        answer = login(app.test_client(), f"boss{secure}@example.com")
        cookie = next(
            value for value in answer.headers.getlist("Set-Cookie") if value.startswith("session=")
        )
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_console_pages_carry_the_security_headers(app: Flask) -> None:
    client = signed_in(app)
    for path in ("/admin/login", "/admin/", "/admin/campaigns/new"):
        answer = client.get(path)
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "same-origin"
        page = answer.get_data(as_text=True)
        assert "<script>" not in page and " style=" not in page  # all in static files


def test_passwords_are_argon2_and_rehashed_when_the_parameters_change(app: Flask) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    with app.extensions["mailer.sessionmaker"]() as session:
        session.add(
            AdminUser(
                email="old@example.com",
                password_hash=old.hash(PASSWORD),
                role="editor",
                active=True,
                created_at=clock.now(),
            )
        )
        session.commit()
    assert login(app.test_client(), "old@example.com").status_code == 302
    with app.extensions["mailer.sessionmaker"]() as session:
        stored = session.scalar(select(AdminUser.password_hash))
    assert stored is not None and stored.startswith("$argon2id$")
    assert not admins.HASHER.check_needs_rehash(stored)  # today's parameters now
    assert PASSWORD not in stored
    assert login(app.test_client(), "old@example.com").status_code == 302
