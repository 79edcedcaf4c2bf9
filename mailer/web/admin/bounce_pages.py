"""Bounces and complaints: the ledger, newest first; the raw report for admins only."""

from __future__ import annotations

from flask import abort, render_template, request

from mailer import db
from mailer.bounces import history
from mailer.models import BounceKind
from mailer.web.admin import bp
from mailer.web.admin.auth import admin_required, login_required

PAGE = 100


@bp.get("/bounces")
@login_required
def bounces_list() -> str:
    kind = request.args.get("kind", "")
    kind = kind if kind in set(BounceKind) else ""
    before = request.args.get("before", type=int)
    rows = history.events(db.get_session(), kind=kind, before_id=before, limit=PAGE + 1)
    return render_template(
        "web/admin/bounces.html",
        rows=rows[:PAGE],
        kind=kind,
        kinds=list(BounceKind),
        next_before=rows[PAGE - 1].id if len(rows) > PAGE else None,
    )


@bp.get("/bounces/<int:event_id>")
@admin_required
def bounce_raw(event_id: int) -> str:
    # The report as received holds others' words and addresses: admins only.
    event = history.raw_report(db.get_session(), event_id)
    if event is None:
        abort(404)
    return render_template("web/admin/bounce_raw.html", event=event)
