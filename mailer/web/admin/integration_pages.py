"""Integrations (admins only): the API's description and tokens, /metrics, webhook endpoints.

An endpoint's secret and a new API token are shown once, on the page that
answers their creation, and never again; each change is audited.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug import Response

from mailer import api_tokens, clock, db, events
from mailer.errors import InvalidTokenName
from mailer.jobs import get_jobs
from mailer.models import ApiToken
from mailer.outbound_webhooks import endpoints
from mailer.web.admin import bp
from mailer.web.admin.auth import admin_required, audit, current_account
from mailer.web.admin.common import settings


def _overview(*, error: str = "", new_token: tuple[str, str] | None = None) -> str:
    session = db.get_session()
    current = settings()
    return render_template(
        "web/admin/integrations.html",
        tokens=session.scalars(select(ApiToken).order_by(ApiToken.id)).all(),
        endpoints=endpoints.listed(session),
        metrics_on=bool(current.metrics_token or current.metrics_allow),
        error=error,
        new_token=new_token,  # (name, token) shown once, never stored in the cookie
    )


@bp.get("/integrations")
@admin_required
def integrations() -> str:
    return _overview()


@bp.post("/integrations/tokens")
@admin_required
def api_token_create() -> str | tuple[str, int]:
    session, name = db.get_session(), request.form.get("name", "")
    try:
        token = api_tokens.create_token(session, name=name, now=clock.now())
    except InvalidTokenName as error:
        session.rollback()
        return _overview(error=f"Token name: {error}"), 400
    audit("api-token.create", name.strip()[:100])
    session.commit()
    return _overview(new_token=(name.strip(), token))


@bp.post("/integrations/tokens/<int:token_id>/revoke")
@admin_required
def api_token_revoke(token_id: int) -> Response:
    session = db.get_session()
    token = session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    session.delete(token)
    audit("api-token.revoke", token.name)
    session.commit()
    flash(f"Token {token.name!r} revoked: calls with it now get 401.", "ok")
    return redirect(url_for("admin.integrations"), code=303)


def _form_page(endpoint_id: int | None = None, *, error: str = "", status: int = 200):
    form = request.form if request.method == "POST" else None
    endpoint = endpoints.get(db.get_session(), endpoint_id) if endpoint_id else None
    chosen = form.getlist("events") if form else (endpoint.event_list if endpoint else [])
    page = render_template(
        "web/admin/webhook_form.html",
        endpoint=endpoint,
        url=form.get("url", "") if form else (endpoint.url if endpoint else ""),
        description=form.get("description", "")
        if form
        else (endpoint.description if endpoint else ""),
        chosen=set(chosen),
        types=events.TYPES,
        error=error,
    )
    return page, status


@bp.route("/webhooks/new", methods=["GET", "POST"])
@admin_required
def webhook_new():
    if request.method == "GET":
        return _form_page()
    session = db.get_session()
    try:
        endpoint_id, secret = endpoints.create(
            session,
            url=request.form.get("url", ""),
            chosen=request.form.getlist("events"),
            description=request.form.get("description", ""),
            actor=current_account().email,
            keys=settings().secret_keys,
            now=clock.now(),
        )
    except endpoints.InvalidEndpoint as error:
        session.rollback()
        return _form_page(error=str(error), status=400)
    audit("webhook.create", f"webhook endpoint {endpoint_id}", request.form.get("url", "")[:200])
    session.commit()
    return _endpoint_page(endpoint_id, secret=secret)


def _endpoint_page(endpoint_id: int, *, secret: str = "") -> str:
    session = db.get_session()
    before = request.args.get("before", type=int)
    return render_template(
        "web/admin/webhook.html",
        endpoint=endpoints.get(session, endpoint_id),
        log=endpoints.log(session, endpoint_id, before=before),
        page_size=endpoints.LOG_PAGE,
        secret=secret,  # shown once, right after creation
    )


@bp.get("/webhooks/<int:endpoint_id>")
@admin_required
def webhook(endpoint_id: int) -> str:
    try:
        return _endpoint_page(endpoint_id)
    except endpoints.InvalidEndpoint:
        abort(404)


@bp.route("/webhooks/<int:endpoint_id>/edit", methods=["GET", "POST"])
@admin_required
def webhook_edit(endpoint_id: int):
    if request.method == "GET":
        return _form_page(endpoint_id)
    session = db.get_session()
    try:
        endpoints.change(
            session,
            endpoint_id,
            url=request.form.get("url", ""),
            chosen=request.form.getlist("events"),
            description=request.form.get("description", ""),
        )
    except endpoints.InvalidEndpoint as error:
        session.rollback()
        return _form_page(endpoint_id, error=str(error), status=400)
    audit("webhook.change", f"webhook endpoint {endpoint_id}")
    session.commit()
    flash("Saved.", "ok")
    return redirect(url_for("admin.webhook", endpoint_id=endpoint_id), code=303)


@bp.post("/webhooks/<int:endpoint_id>/<action>")
@admin_required
def webhook_action(endpoint_id: int, action: str) -> Response:
    if action not in {"enable", "disable", "delete"}:
        abort(404)
    session = db.get_session()
    try:
        if action == "delete":
            endpoints.delete(session, endpoint_id)
        else:
            endpoints.set_enabled(session, endpoint_id, enabled=action == "enable", now=clock.now())
    except endpoints.InvalidEndpoint:
        abort(404)
    audit(f"webhook.{action}", f"webhook endpoint {endpoint_id}")
    session.commit()
    if action == "delete":
        flash(f"Webhook endpoint {endpoint_id} deleted, with its log.", "ok")
        return redirect(url_for("admin.integrations"), code=303)
    flash("Switched on." if action == "enable" else "Switched off: nothing more is sent.", "ok")
    return redirect(url_for("admin.webhook", endpoint_id=endpoint_id), code=303)


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/resend")
@admin_required
def webhook_resend(endpoint_id: int, delivery_id: int) -> Response:
    session = db.get_session()
    try:
        endpoints.resend(session, endpoint_id, delivery_id, now=clock.now())
    except endpoints.InvalidEndpoint as error:
        session.rollback()
        flash(str(error), "error")
        return redirect(url_for("admin.webhook", endpoint_id=endpoint_id), code=303)
    audit("webhook.resend", f"webhook endpoint {endpoint_id}", f"delivery {delivery_id}")
    session.commit()
    get_jobs().deliver_webhooks([delivery_id])
    flash(f"Delivery {delivery_id} queued again.", "ok")
    return redirect(url_for("admin.webhook", endpoint_id=endpoint_id), code=303)
