"""Helpers for the admin console's tests: accounts, logging in, posting forms with their token."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from mailer import admins, clock

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_account(
    app: Flask, email: str = "boss@example.com", role: str = "admin", password: str = PASSWORD
) -> int:
    """An account straight into the database (the CLI and the accounts page have their tests)."""
    with app.extensions["mailer.sessionmaker"]() as session:
        admin_id = admins.create_admin(session, email, password, role, clock.now())
        session.commit()
        return admin_id


def csrf_token(client: FlaskClient, path: str = "/admin/login") -> str:
    """The CSRF token of the client's session, read from a page with a form."""
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(
    client: FlaskClient,
    email: str = "boss@example.com",
    password: str = PASSWORD,
    ip: str = "127.0.0.1",
    **extra: str,
):
    """Post the login form as a person would (with the page's CSRF token)."""
    data = {"csrf_token": csrf_token(client), "email": email, "password": password, **extra}
    return client.post("/admin/login", data=data, environ_base={"REMOTE_ADDR": ip})


def post(client: FlaskClient, path: str, data: dict | None = None, **kwargs):
    """Post a console form with a valid CSRF token, like the page's own form does."""
    token = csrf_token(client, "/admin/notices")
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


def signed_in(app: Flask, role: str = "admin", email: str = "boss@example.com") -> FlaskClient:
    """A test client logged in with a fresh account of `role`."""
    make_account(app, email, role)
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client
