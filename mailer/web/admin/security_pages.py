"""The signed-in person's own security: two-factor sign-in and its recovery codes.

Every account may turn two-factor sign-in on here; with
MAILER_ADMIN_REQUIRE_2FA, admins are sent here until they do and cannot turn
it off. Recovery codes are shown once, on the page that makes them.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug import Response

from mailer import admins, clock, db, two_factor
from mailer.web.admin import bp
from mailer.web.admin.auth import audit, current_account, login_required


def _keys() -> tuple[str, ...]:
    return current_app.extensions["mailer.settings"].secret_keys


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    account = admins.get(db.get_session(), current_account().id)
    if account is None:  # the signed-in account; its row goes only with its sessions
        abort(404)
    secret = two_factor.pending_secret(db.get_session(), account.id, _keys())
    settings = current_app.extensions["mailer.settings"]
    context.setdefault("error", "")
    return render_template(
        "web/admin/security.html",
        account=account,
        pending=secret,
        qr=two_factor.qr_svg(secret, account.email, settings.site_name) if secret else "",
        unused=two_factor.unused_codes(db.get_session(), account.id),
        required=settings.admin_require_2fa and account.is_admin,
        **context,
    ), status


@bp.get("/security")
@login_required
def security() -> tuple[str, int]:
    return _page()


@bp.post("/security/2fa/start")
@login_required
def security_2fa_start() -> tuple[str, int]:
    session = db.get_session()
    try:
        two_factor.begin(session, current_account().id, _keys())
    except two_factor.TwoFactorError as error:
        session.rollback()
        return _page(409, error=str(error))
    session.commit()
    return _page()


@bp.post("/security/2fa/confirm")
@login_required
def security_2fa_confirm() -> Response | tuple[str, int]:
    session = db.get_session()
    try:
        codes = two_factor.confirm(
            session, current_account().id, _keys(), request.form.get("code", ""), now=clock.now()
        )
    except two_factor.TwoFactorError as error:
        session.rollback()
        return _page(400, error=str(error))
    audit("account.2fa-on", current_account().email)
    session.commit()
    # Confirming ended every session of the account, this one too: log in again with a code.
    return render_template("web/admin/recovery_codes.html", codes=codes, relogin=True), 200


@bp.post("/security/recovery-codes")
@login_required
def security_recovery_codes() -> tuple[str, int]:
    session = db.get_session()
    account_id = current_account().id
    if not two_factor.verify(
        session, account_id, _keys(), request.form.get("code", ""), now=clock.now()
    ):
        session.commit()
        return _page(400, error="That code is not right; new recovery codes need a current one.")
    codes = two_factor.new_recovery_codes(session, account_id)
    audit("account.recovery-codes", current_account().email)
    session.commit()
    return render_template("web/admin/recovery_codes.html", codes=codes, relogin=False), 200


@bp.post("/security/2fa/disable")
@login_required
def security_2fa_disable() -> Response | tuple[str, int]:
    account = current_account()
    if current_app.extensions["mailer.settings"].admin_require_2fa and account.is_admin:
        return _page(409, error="Admins must keep two-factor sign-in on here.")
    session = db.get_session()
    if not admins.password_matches(session, account.email, request.form.get("password", "")):
        return _page(400, error="That is not your password: two-factor sign-in stays on.")
    two_factor.disable(session, account.id)
    audit("account.2fa-off", account.email)
    session.commit()
    flash("Two-factor sign-in is off. Please log in again.", "info")
    return redirect(url_for("admin.login"), code=303)
