"""Two-factor sign-in with TOTP (RFC 6238), as an authenticator app computes it (item 5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyotp
from sqlalchemy import select

from mailer.models import AdminUser, RecoveryCode
from tests.admin_helpers import PASSWORD, csrf_token, login, make_account, post, signed_in

SECRET = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')
CODES = re.compile(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5}-[0-9a-f]{5})</code></li>")


def _post(client, path: str, data: dict | None = None):
    token = csrf_token(client, "/admin/security")  # the one page an unenrolled admin sees
    return client.post(path, data={"csrf_token": token, **(data or {})})


def _enrol(client) -> tuple[pyotp.TOTP, list[str]]:
    """What a person does on the Security page; returns their app and their recovery codes."""
    started = _post(client, "/admin/security/2fa/start")
    assert started.status_code == 200 and "<svg" in started.text  # the QR code, inline
    totp = pyotp.TOTP(SECRET.search(started.text).group(1))
    done = _post(client, "/admin/security/2fa/confirm", {"code": totp.now()})
    assert done.status_code == 200, done.text
    assert done.headers["Cache-Control"] == "no-store"
    return totp, CODES.findall(done.text)


def _second_step(client, code: str):
    return client.post(
        "/admin/login/code",
        data={"csrf_token": csrf_token(client, "/admin/login/code"), "code": code},
    )


def _code_at(totp: pyotp.TOTP, step_offset: int) -> str:
    return totp.at(datetime.now(UTC).timestamp() + step_offset * totp.interval)


def test_with_two_factor_on_a_password_alone_opens_nothing(app, session):
    client = signed_in(app)
    totp, codes = _enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/admin/").status_code == 302  # turning it on ended the old sessions

    stranger = app.test_client()
    step_one = login(stranger)
    assert step_one.status_code == 302 and step_one.headers["Location"] == "/admin/login/code"
    assert stranger.get("/admin/").status_code == 302
    assert (
        _second_step(stranger, "000000" if totp.now() != "000000" else "111111").status_code == 401
    )
    assert stranger.get("/admin/").status_code == 302

    owner = app.test_client()
    login(owner)
    code = _code_at(totp, +1)  # the next code: clocks drift
    answer = _second_step(owner, code)
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    assert owner.get("/admin/").status_code == 200

    replay = app.test_client()  # the same code, seen over a shoulder
    login(replay)
    assert _second_step(replay, code).status_code == 401

    user = session.scalars(select(AdminUser)).one()
    assert user.totp_secret and totp.secret not in user.totp_secret  # encrypted at rest
    hashes = session.scalars(select(RecoveryCode.code_hash)).all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not any(code.replace("-", "") in h for code in codes for h in hashes)


def test_a_recovery_code_logs_in_once(app, session):
    client = signed_in(app)
    _totp, codes = _enrol(client)
    first = app.test_client()
    login(first)
    assert _second_step(first, codes[3].upper()).status_code == 302
    again = app.test_client()
    login(again)
    assert _second_step(again, codes[3]).status_code == 401
    session.expire_all()
    used = session.scalars(select(RecoveryCode).where(RecoveryCode.used_at.is_not(None))).all()
    assert len(used) == 1


def test_admins_must_set_it_up_when_the_site_says_so(make_app, session):
    app = make_app(admin_require_2fa=True)
    admin = signed_in(app)
    editor = signed_in(app, "editor", "ed@example.com")

    for path in ("/admin/", "/admin/subscribers", "/admin/accounts"):
        answer = admin.get(path)
        assert answer.status_code == 302 and answer.headers["Location"] == "/admin/security"
    assert editor.get("/admin/").status_code == 200  # the setting is about admins
    totp, _codes = _enrol(admin)
    again = app.test_client()
    login(again)
    assert _second_step(again, _code_at(totp, +1)).status_code == 302
    assert again.get("/admin/subscribers").status_code == 200
    refused = post(again, "/admin/security/2fa/disable", {"password": PASSWORD})
    assert refused.status_code == 409
    assert session.scalars(select(AdminUser.totp_enabled_at).where(AdminUser.id == 1)).one()


def test_reset_2fa_from_the_command_line_after_a_lost_phone(app, session):
    from tests.security.flows import cli

    make_account(app)
    client = app.test_client()
    login(client)
    _enrol(client)
    assert cli(app, "admin", "reset-2fa", "boss@example.com").exit_code == 0
    fresh = app.test_client()
    assert login(fresh).headers["Location"] == "/admin/"  # the password alone again
