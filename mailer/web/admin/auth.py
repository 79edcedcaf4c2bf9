"""Login, logout and the two guards of the console: `login_required` and `admin_required`.

Use them on every view of the console (the blueprint also refuses anonymous
requests on its own, in case a view forgets)::

    from mailer.web.admin import bp
    from mailer.web.admin.auth import admin_required, audit

    @bp.get("/things")
    @admin_required
    def things(): ...

`audit(action, target, detail)` records what the signed-in account did, in
the request's database session: commit it together with the change itself.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug import Response

from mailer import admins, clock, console_sessions, db, login_throttle, two_factor
from mailer.settings import Settings
from mailer.web.admin import bp

View = TypeVar("View", bound=Callable[..., Any])
PUBLIC_ENDPOINTS = {"admin.login", "admin.login_code"}
# What an admin without two-factor sign-in may reach when MAILER_ADMIN_REQUIRE_2FA is on.
ENROLMENT_ENDPOINTS = {
    "admin.security",
    "admin.security_2fa_start",
    "admin.security_2fa_confirm",
    "admin.logout",
    "static",
}
PENDING = "pending_second_step"
PENDING_SECONDS = 300
BAD_LOGIN = "That email address and password do not match an active account."

login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.login_message = "Please log in to see that page."
login_manager.login_message_category = "info"


class ConsoleUser(UserMixin):
    """The signed-in account, as Flask-Login wants it, with the token of its session."""

    def __init__(self, account: admins.Account, token: str) -> None:
        self.account = account
        self.token = token

    def get_id(self) -> str:
        # What the cookie carries: the session's random token, looked up on every request.
        return self.token

    @property
    def is_active(self) -> bool:
        return self.account.active

    @property
    def is_admin(self) -> bool:
        return self.account.is_admin

    @property
    def email(self) -> str:
        return self.account.email

    @property
    def role(self) -> str:
        return self.account.role


def _settings() -> Settings:
    return current_app.extensions["mailer.settings"]


@login_manager.user_loader
def _load_user(token: str) -> ConsoleUser | None:
    settings, db_session = _settings(), db.get_session()
    admin_id = console_sessions.check(
        db_session,
        token,
        now=clock.now(),
        idle=timedelta(minutes=settings.admin_idle_minutes),
        lifetime=timedelta(hours=settings.admin_session_hours),
    )
    db_session.commit()  # the session's last use (or its end): before the view does anything
    account = admins.get(db_session, admin_id) if admin_id is not None else None
    if account is None or not account.active:
        return None  # logged out, timed out, deactivated or password changed
    return ConsoleUser(account, token)


def current_account() -> admins.Account:
    """The signed-in account (only call behind login_required)."""
    return current_user.account


def login_required(view: View) -> View:
    """Any active account; others go to the login page, which brings them back (?next=)."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def admin_required(view: View) -> View:
    """Admins only: an editor gets 403, an anonymous visitor the login page."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403, "This page is for admins. Ask an admin if you need it.")
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def audit(action: str, target: str = "", detail: str = "") -> None:
    """Record an action of the signed-in account; committed with the request's session."""
    admins.audit(db.get_session(), current_account(), action, target, detail, now=clock.now())


@bp.before_request
def _require_login() -> Response | None:
    """No console page without a login, even if a view forgot its decorator.

    With MAILER_ADMIN_REQUIRE_2FA an admin without two-factor sign-in sees
    nothing but the page that sets it up.
    """
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if (
        _settings().admin_require_2fa
        and current_user.is_admin
        and not current_user.account.two_factor
        and request.endpoint not in ENROLMENT_ENDPOINTS
    ):
        flash("Admins must use two-factor sign-in here: set it up to go on.", "error")
        return redirect(url_for("admin.security"))
    return None


def _safe_next(target: str | None) -> str:
    # Only back into the console: never to another site (an open redirect).
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and parts.path.startswith("/admin"):
        return target
    return url_for("admin.dashboard")


def _client_ip() -> str:
    return request.remote_addr or ""


def _login_page(status: int = 200, **context: Any) -> tuple[str, int]:
    context.setdefault("email", "")
    context.setdefault("next_url", request.values.get("next", ""))
    return render_template("web/admin/login.html", **context), status


def _too_soon(account_name: str) -> tuple[str, int, dict[str, str]] | None:
    """429 for a (name, IP) pair that failed too often lately; nothing is checked meanwhile."""
    wait = login_throttle.wait_seconds(
        db.get_session(), account_name, _client_ip(), now=clock.now()
    )
    if wait <= 0:
        return None
    seconds = math.ceil(wait)
    page, _ = _login_page(
        error=f"Too many failed attempts from here. Try again in {seconds} seconds.",
        email=account_name,
    )
    return page, 429, {"Retry-After": str(seconds)}


def _failed(account_name: str, page_context: dict[str, Any]) -> tuple[str, int]:
    db_session, now = db.get_session(), clock.now()
    login_throttle.record_failure(db_session, account_name, _client_ip(), now=now)
    admins.audit(
        db_session, admins.known_account(db_session, account_name), "login.failed", now=now
    )
    db_session.commit()
    return _login_page(401, **page_context)


def _sign_in(account: admins.Account, account_name: str) -> Response:
    db_session, now = db.get_session(), clock.now()
    login_throttle.clear(db_session, account_name, _client_ip())
    token = console_sessions.start(db_session, account.id, now=now)
    admins.audit(db_session, account, "login", now=now)
    db_session.commit()
    next_url = session.get(PENDING, {}).get("next", "") or request.values.get("next", "")
    session.clear()  # nothing from before the login carries over into the signed-in session
    login_user(ConsoleUser(account, token))
    return redirect(_safe_next(next_url))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(request.values.get("next", "")))
        return _login_page()
    email = request.form.get("email", "")[:320]
    if refused := _too_soon(email):
        return refused
    db_session = db.get_session()
    account = admins.authenticate(db_session, email, request.form.get("password", ""), clock.now())
    if account is None:
        # The same words whether the address is unknown or the password wrong.
        return _failed(email, {"email": email, "error": BAD_LOGIN})
    if not account.two_factor:
        return _sign_in(account, email)
    db_session.commit()
    # The password was right: the second step has five minutes, in this browser only.
    session[PENDING] = {
        "admin_id": account.id,
        "name": email,
        "at": clock.now().timestamp(),
        "next": request.values.get("next", ""),
    }
    return redirect(url_for("admin.login_code"))


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """The second step: a code from the authenticator app, or a recovery code."""
    pending = session.get(PENDING)
    if not pending or clock.now().timestamp() - pending["at"] > PENDING_SECONDS:
        session.pop(PENDING, None)
        flash("Please log in again.", "info")
        return redirect(url_for("admin.login"))
    if request.method == "GET":
        return render_template("web/admin/login_code.html", error=""), 200
    if refused := _too_soon(pending["name"]):
        return refused
    db_session = db.get_session()
    settings = _settings()
    ok = two_factor.verify(
        db_session,
        pending["admin_id"],
        settings.secret_keys,
        request.form.get("code", ""),
        now=clock.now(),
    )
    account = admins.get(db_session, pending["admin_id"])
    if not ok or account is None or not account.active:
        db_session.commit()  # a recovery code spent on a deactivated account stays spent
        page = render_template(
            "web/admin/login_code.html", error="That code is not right. Try the next one."
        )
        login_throttle.record_failure(db_session, pending["name"], _client_ip(), now=clock.now())
        admins.audit(
            db_session, account or "(gone)", "login.failed", "second step", now=clock.now()
        )
        db_session.commit()
        return page, 401
    return _sign_in(account, pending["name"])


@bp.post("/logout")
@login_required
def logout() -> Response:
    audit("logout")
    console_sessions.end(db.get_session(), current_user.token)
    db.get_session().commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("admin.login"))


def _failed_login(response: Response) -> bool:
    return response.status_code == 401


def init_login(app: Flask, limiter: Limiter) -> None:
    """Flask-Login on `app`, and the per-client-IP limit of failed logins.

    Only failed attempts count, so a person who types the password right is
    never slowed down. Per account there is no limit, only the per (account,
    IP) slow-down of mailer.login_throttle: ten wrong passwords from ten
    addresses must not lock the owner out.
    """
    login_manager.init_app(app)
    limit = app.extensions["mailer.settings"].admin_login_limit
    for endpoint in ("admin.login", "admin.login_code"):
        app.view_functions[endpoint] = limiter.limit(
            limit,
            key_func=get_remote_address,
            methods=["POST"],
            deduct_when=_failed_login,
            scope="admin-login",
        )(app.view_functions[endpoint])
