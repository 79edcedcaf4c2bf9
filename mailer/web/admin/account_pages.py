"""Accounts (admins only): list, create, deactivate, reset a password; and the audit log."""

from __future__ import annotations

import secrets

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug import Response

from mailer import admins, clock, db
from mailer.models import AdminRole
from mailer.web.admin import bp
from mailer.web.admin.auth import admin_required, audit, current_account


def _new_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def _page(*, error: str = "", shown: tuple[str, str] | None = None, email: str = "") -> str:
    return render_template(
        "web/admin/accounts.html",
        accounts=admins.list_admins(db.get_session()),
        roles=list(AdminRole),
        error=error,
        shown=shown,  # (address, password) to show once, never stored in the cookie
        email=email,
        me=current_account(),
    )


@bp.get("/accounts")
@admin_required
def accounts() -> str:
    return _page()


@bp.post("/accounts")
@admin_required
def account_create() -> str | tuple[str, int]:
    session, password = db.get_session(), _new_password()
    email, role = request.form.get("email", ""), request.form.get("role", "")
    try:
        admin_id = admins.create_admin(session, email, password, role, clock.now())
    except admins.InvalidAccount as error:
        session.rollback()
        return _page(error=str(error), email=email), 400
    account = admins.get(session, admin_id)
    if account is None:  # made a line above, in this transaction
        abort(500)
    audit("account.create", account.email, f"role {role}")
    session.commit()
    return _page(shown=(account.email, password))


@bp.post("/accounts/<int:admin_id>/<action>")
@admin_required
def account_action(admin_id: int, action: str) -> str | Response | tuple[str, int]:
    session = db.get_session()
    account = admins.get(session, admin_id)
    if account is None or action not in {"deactivate", "activate", "reset-password"}:
        abort(404)
    if admin_id == current_account().id and action != "reset-password":
        flash("You cannot deactivate your own account; ask another admin.", "error")
        return redirect(url_for("admin.accounts"), code=303)
    try:
        if action == "reset-password":
            password = _new_password()
            admins.set_password(session, admin_id, password)
        else:
            admins.set_active(session, admin_id, active=action == "activate")
    except admins.InvalidAccount as error:
        session.rollback()
        return _page(error=str(error)), 409
    audit(f"account.{action}", account.email)
    session.commit()
    if action == "reset-password":
        return _page(shown=(account.email, password))
    flash(f"{account.email} {action}d.", "ok")
    return redirect(url_for("admin.accounts"), code=303)


@bp.get("/audit")
@admin_required
def audit_log() -> str:
    before = request.args.get("before", type=int)
    action = request.args.get("action", "").strip()[:60]
    rows = admins.audit_log(db.get_session(), before_id=before, action=action, limit=101)
    return render_template(
        "web/admin/audit.html",
        rows=rows[:100],
        action=action,
        next_before=rows[99].id if len(rows) > 100 else None,
    )
