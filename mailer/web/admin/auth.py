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
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Flask,
    abort,
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

from mailer import admins, clock, db
from mailer.web.admin import bp

View = TypeVar("View", bound=Callable[..., Any])
PUBLIC_ENDPOINTS = {"admin.login"}

login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.login_message = "Please log in to see that page."
login_manager.login_message_category = "info"


class ConsoleUser(UserMixin):
    """The signed-in account, as Flask-Login wants it."""

    def __init__(self, account: admins.Account) -> None:
        self.account = account

    def get_id(self) -> str:
        # The id alone would outlive a password change; with the key it does not.
        return f"{self.account.id}:{self.account.session_key}"

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


@login_manager.user_loader
def _load_user(user_id: str) -> ConsoleUser | None:
    admin_id, _, key = user_id.partition(":")
    if not admin_id.isdigit():
        return None
    account = admins.get(db.get_session(), int(admin_id))
    if account is None or not account.active or account.session_key != key:
        return None  # deactivated or password changed: the session ends here
    return ConsoleUser(account)


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
    """No console page without a login, even if a view forgot its decorator."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


def _safe_next(target: str | None) -> str:
    # Only back into the console: never to another site (an open redirect).
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and parts.path.startswith("/admin"):
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    next_url = request.values.get("next", "")
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(next_url))
        return render_template("web/admin/login.html", next_url=next_url, email="")
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")
    db_session, now = db.get_session(), clock.now()
    account = admins.authenticate(db_session, email, password, now)
    if account is None:
        admins.audit(db_session, email.strip() or "(no address)", "login.failed", now=now)
        db_session.commit()
        # The same words whether the address is unknown or the password wrong.
        page = render_template(
            "web/admin/login.html",
            next_url=next_url,
            email=email,
            error="That email address and password do not match an active account.",
        )
        return page, 401
    session.clear()  # nothing from before the login carries over into the signed-in session
    login_user(ConsoleUser(account))
    admins.audit(db_session, account, "login", now=now)
    db_session.commit()
    return redirect(_safe_next(next_url))


@bp.post("/logout")
@login_required
def logout() -> Response:
    audit("logout")
    db.get_session().commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("admin.login"))


def _account_key() -> str:
    return "admin-login:" + request.form.get("email", "").strip().lower()[:320]


def _failed(response: Response) -> bool:
    return response.status_code == 401


def init_login(app: Flask, limiter: Limiter) -> None:
    """Flask-Login on `app`, and the login limits: per client IP and per account.

    Only failed attempts count, so a person who types the password right is
    never slowed down, while guessing stops after a few tries a minute.
    """
    login_manager.init_app(app)
    limit = app.extensions["mailer.settings"].admin_login_limit
    view = app.view_functions["admin.login"]
    for key in (get_remote_address, _account_key):
        view = limiter.limit(limit, key_func=key, methods=["POST"], deduct_when=_failed)(view)
    app.view_functions["admin.login"] = view
