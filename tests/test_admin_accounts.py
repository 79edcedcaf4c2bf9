"""Accounts: `mailer admin create` (password from a prompt or stdin, never argv), the accounts
page, and the audit log page."""

from __future__ import annotations

import os
import re
import select as fd_select
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import select

from mailer import admins, clock
from mailer.cli import main
from mailer.models import AdminUser, AuditEntry
from tests.admin_helpers import PASSWORD, login, make_account, post, signed_in
from tests.helpers import settings_env


def _cli(app: Flask, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, obj=ScriptInfo(create_app=lambda: app))


def _accounts(app: Flask) -> list[tuple[str, str, bool]]:
    with app.extensions["mailer.sessionmaker"]() as session:
        rows = session.execute(
            select(AdminUser.email, AdminUser.role, AdminUser.active).order_by(AdminUser.id)
        )
        return [tuple(row) for row in rows]


def _actions(app: Flask) -> list[tuple[str, str, str]]:
    with app.extensions["mailer.sessionmaker"]() as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id)
        )
        return [tuple(row) for row in rows]


def test_admin_create_reads_the_password_from_stdin(app: Flask) -> None:
    result = _cli(
        app, "admin", "create", "Ann@Example.com", "--role", "admin", input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "created: ann@example.com (admin)" in result.output
    assert PASSWORD not in result.output
    assert _accounts(app) == [("ann@example.com", "admin", True)]
    assert login(app.test_client(), "ann@example.com").status_code == 302
    assert _actions(app)[0] == ("cli", "account.create", "ann@example.com")


def test_admin_create_asks_on_a_terminal_hidden_and_twice(app: Flask) -> None:
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "admin", "create", "tty@example.com"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=settings_env(app.extensions["mailer.settings"]),
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""

    def read_until(pattern: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while pattern not in seen:
            assert time.monotonic() < deadline, f"no {pattern!r} in {seen!r}"
            ready, _, _ = fd_select.select([controller], [], [], 1)
            if ready:
                seen += os.read(controller, 1024)

    try:
        read_until(b"Password: ")
        os.write(controller, PASSWORD.encode() + b"\n")
        read_until(b"Repeat for confirmation: ")
        os.write(controller, PASSWORD.encode() + b"\n")
        read_until(b"created: tty@example.com (editor)")
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
        os.close(controller)
    assert PASSWORD.encode() not in seen  # never echoed to the screen
    assert _accounts(app) == [("tty@example.com", "editor", True)]


@pytest.mark.parametrize(
    "args",
    [
        ["admin", "create", "ann@example.com", PASSWORD],
        ["admin", "create", "ann@example.com", "--password", PASSWORD],
    ],
)
def test_admin_create_takes_no_password_argument(app: Flask, args: list[str]) -> None:
    result = _cli(app, *args, input=PASSWORD + "\n")
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output or "No such option" in result.output
    assert _accounts(app) == []


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["ann@example.com"], "short\n", "at least 12 characters"),
        (["ann@example.com"], "\n", "no password on stdin"),
        (["not-an-address"], PASSWORD + "\n", "is not an email address"),
        (["ann@example.com", "--role", "owner"], PASSWORD + "\n", "'owner' is not one of"),
    ],
)
def test_admin_create_refuses_bad_input_and_stores_nothing(
    app: Flask, args: list[str], stdin: str, message: str
) -> None:
    result = _cli(app, "admin", "create", *args, input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert _accounts(app) == [] and _actions(app) == []


def test_admin_create_refuses_a_second_account_for_an_address(app: Flask) -> None:
    make_account(app, "ann@example.com")
    result = _cli(app, "admin", "create", "ANN@example.com", input=PASSWORD + "\n")
    assert result.exit_code == 1 and "already an account for ann@example.com" in result.output
    assert len(_accounts(app)) == 1


def test_admin_list_set_password_and_deactivate(app: Flask) -> None:
    make_account(app, "ann@example.com")
    make_account(app, "ed@example.com", "editor")
    listing = _cli(app, "admin", "list")
    assert "ann@example.com\tadmin\tactive\tlast login never" in listing.output
    changed = _cli(app, "admin", "set-password", "ed@example.com", input="another password!\n")
    assert changed.exit_code == 0, changed.output
    assert login(app.test_client(), "ed@example.com").status_code == 401
    assert login(app.test_client(), "ed@example.com", "another password!").status_code == 302
    assert _cli(app, "admin", "deactivate", "ed@example.com").exit_code == 0
    last = _cli(app, "admin", "deactivate", "ann@example.com")
    assert last.exit_code == 1 and "last active admin" in last.output
    assert _accounts(app) == [
        ("ann@example.com", "admin", True),
        ("ed@example.com", "editor", False),
    ]


def test_the_accounts_page_creates_an_account_and_shows_its_password_once(app: Flask) -> None:
    client = signed_in(app)
    answer = post(client, "/admin/accounts", {"email": "ed@example.com", "role": "editor"})
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    password = re.search(r'<code class="password" id="new-password">([^<]+)</code>', page)
    assert password, page
    assert "shown this once only" in page
    assert password.group(1) not in client.get("/admin/accounts").get_data(as_text=True)
    assert login(app.test_client(), "ed@example.com", password.group(1)).status_code == 302
    assert ("boss@example.com", "account.create", "ed@example.com") in _actions(app)


def test_the_accounts_page_refuses_a_duplicate_or_a_bad_address(app: Flask) -> None:
    client = signed_in(app)
    for email, message in (
        ("boss@example.com", "There is already an account for boss@example.com"),
        ("nope", "is not an email address"),
    ):
        answer = post(client, "/admin/accounts", {"email": email, "role": "editor"})
        assert answer.status_code == 400
        assert message in answer.get_data(as_text=True)
    assert len(_accounts(app)) == 1


def test_deactivating_an_account_logs_it_out_and_is_audited(app: Flask) -> None:
    editor = signed_in(app, "editor", "ed@example.com")
    boss = signed_in(app, "admin", "boss@example.com")
    with app.extensions["mailer.sessionmaker"]() as session:
        editor_id = admins.find(session, "ed@example.com").id  # type: ignore[union-attr]
        boss_id = admins.find(session, "boss@example.com").id  # type: ignore[union-attr]
    answer = post(boss, f"/admin/accounts/{editor_id}/deactivate", follow_redirects=True)
    assert "ed@example.com deactivated." in answer.get_data(as_text=True)
    assert editor.get("/admin/").status_code == 302
    own = post(boss, f"/admin/accounts/{boss_id}/deactivate", follow_redirects=True)
    assert "You cannot deactivate your own account" in own.get_data(as_text=True)
    assert _accounts(app) == [
        ("ed@example.com", "editor", False),
        ("boss@example.com", "admin", True),
    ]
    post(boss, f"/admin/accounts/{editor_id}/activate")
    assert ("boss@example.com", "account.activate", "ed@example.com") in _actions(app)
    assert ("boss@example.com", "account.deactivate", "ed@example.com") in _actions(app)


def test_a_new_password_from_the_accounts_page_replaces_the_old(app: Flask) -> None:
    boss = signed_in(app)
    make_account(app, "ed@example.com", "editor")
    with app.extensions["mailer.sessionmaker"]() as session:
        editor_id = admins.find(session, "ed@example.com").id  # type: ignore[union-attr]
    page = post(boss, f"/admin/accounts/{editor_id}/reset-password").get_data(as_text=True)
    password = re.search(r'id="new-password">([^<]+)<', page)
    assert password
    assert login(app.test_client(), "ed@example.com").status_code == 401
    assert login(app.test_client(), "ed@example.com", password.group(1)).status_code == 302


def test_the_last_admin_cannot_be_deactivated(app: Flask) -> None:
    with app.extensions["mailer.sessionmaker"]() as session:
        boss = admins.create_admin(session, "boss@example.com", PASSWORD, "admin", clock.now())
        with pytest.raises(admins.InvalidAccount, match="last active admin"):
            admins.deactivate(session, boss)


def test_the_audit_log_page_lists_and_filters_what_was_done(app: Flask) -> None:
    client = signed_in(app)
    post(
        client,
        "/admin/notices/new",
        {"kind": "article", "title": "Audited", "url": "https://site.example/a"},
    )
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "notice.create" in page and "login" in page and "Audited" in page
    filtered = client.get("/admin/audit?action=notice").get_data(as_text=True)
    assert "notice.create" in filtered and "<td>login</td>" not in filtered
    none = client.get("/admin/audit?action=campaign").get_data(as_text=True)
    assert "Nothing recorded for “campaign”" in none
