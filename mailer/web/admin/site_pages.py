"""Site settings (admins): name, home, postal address, look, defaults, sender, automatic sending.

Also the first start's two questions (postal address, automatic sending on or
off), asked on the dashboard until an admin answers them. Every save is in
the audit log with the names of the fields it changed (their values can be
personal, a sole trader's home address for one).
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug import Response

from mailer import automatic, clock, db, site
from mailer.errors import InvalidSiteSettings
from mailer.jobs import get_jobs
from mailer.web.admin import bp
from mailer.web.admin.auth import admin_required, audit, current_account
from mailer.web.admin.common import settings
from mailer.web.forms import TOPIC_LABELS
from mailer.web.site_context import site_settings

LABELS = {
    "site_name": "Site name",
    "home_url": "Home page",
    "postal_address": "Postal address",
    "logo_url": "Logo",
    "brand_colour": "Brand colour",
    "default_topics": "Topics ticked at signup",
    "default_frequency": "How often, preselected at signup",
    "from_name": "Sender name",
    "from_address": "Sender address",
}


def _form_values() -> dict[str, str]:
    values = {field: request.form.get(field, "") for field in site.FIELDS}
    values["default_topics"] = ",".join(request.form.getlist("default_topics"))
    return values


def _page(values: dict[str, object] | None = None, error: InvalidSiteSettings | None = None):
    current = site_settings()
    shown = values or {
        field: ",".join(value) if isinstance(value := getattr(current, field), tuple) else value
        for field in site.FIELDS
    }
    state = automatic.status(db.get_session(), latest=0)
    page = render_template(
        "web/admin/site_settings.html",
        values=shown,
        env=site.defaults(settings()),
        current=current,
        labels=LABELS,
        topics=TOPIC_LABELS,
        automatic_on=not state.paused,
        error=error,
        sender_domain=settings().sender_domain,
    )
    return page, 400 if error else 200


@bp.get("/settings")
@admin_required
def site_settings_page():
    return _page()


def _switch_automatic(on: bool) -> list[int]:
    """Turn automatic sending on or off; the campaigns a pause held, to restart after commit."""
    session, by = db.get_session(), current_account().email
    paused = automatic.status(session, latest=0).paused
    if on and paused:
        audit("automatic.resume", "automatic sending")
        return automatic.resume(session, now=clock.now(), by=by)
    if not on and not paused:
        automatic.pause(session, now=clock.now(), by=by)
        audit("automatic.pause", "automatic sending")
    return []


def _save(values: dict[str, str]) -> list[str]:
    """Store the fields and the switch; raise InvalidSiteSettings before anything is written."""
    session = db.get_session()
    changed = site.save(session, settings(), values, by=current_account().email, now=clock.now())
    if changed:
        audit("site.settings", "site settings", "changed " + ", ".join(changed))
    return changed


@bp.post("/settings")
@admin_required
def site_settings_save() -> Response | tuple[str, int]:
    values = _form_values()
    try:
        changed = _save(values)
    except InvalidSiteSettings as error:
        db.get_session().rollback()
        return _page(values, error)
    resumed = _switch_automatic(request.form.get("automatic") == "on")
    db.get_session().commit()
    for campaign_id in resumed:
        get_jobs().start_sending(campaign_id)
    named = ", ".join(LABELS[field].lower() for field in changed)
    flash(f"Saved: {named}." if changed else "Saved; nothing had changed.", "ok")
    return redirect(url_for("admin.site_settings_page"), code=303)


@bp.post("/setup")
@admin_required
def first_start() -> Response | tuple[str, int]:
    """The first start's answers: the postal address and whether automatic sending is on."""
    values = {"postal_address": request.form.get("postal_address", "")}
    try:
        if values["postal_address"].strip():
            _save(values)
    except InvalidSiteSettings as error:
        db.get_session().rollback()
        flash(f"Not saved: the postal address: {error}.", "error")
        return redirect(url_for("admin.dashboard"), code=303)
    on = request.form.get("automatic") == "on"
    resumed = _switch_automatic(on)
    site.finish_setup(db.get_session(), now=clock.now())
    audit("site.setup", "site settings", f"automatic sending {'on' if on else 'off'}")
    db.get_session().commit()
    for campaign_id in resumed:
        get_jobs().start_sending(campaign_id)
    flash(
        "Automatic sending is on: new notices go out by themselves."
        if on
        else "Automatic sending is off: only the campaigns you start go out.",
        "ok",
    )
    return redirect(url_for("admin.dashboard"), code=303)
