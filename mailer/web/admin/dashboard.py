"""The console's first page: subscribers by state, signups per day, the last campaigns."""

from __future__ import annotations

from flask import render_template

from mailer import clock, db, stats
from mailer.bounces import history
from mailer.web.admin import bp
from mailer.web.admin.auth import login_required
from mailer.web.admin.chart import signup_chart
from mailer.web.admin.common import zone_name

CHART_DAYS = 90


@bp.get("/")
@login_required
def dashboard() -> str:
    session, now = db.get_session(), clock.now()
    days = stats.daily_signups(session, now=now, days=CHART_DAYS, zone=zone_name())
    return render_template(
        "web/admin/dashboard.html",
        counts=stats.subscriber_counts(session),
        days=days,
        chart=signup_chart(days),
        signups=sum(day.signups for day in days),
        imports=sum(day.imports for day in days),
        confirmations=sum(day.confirmations for day in days),
        net=sum(day.net for day in days),
        rate=stats.confirmation_rate(session, now=now),
        campaigns=stats.campaign_counts(session, limit=5, hide_empty_automatic=True),
        warnings=history.warnings(session),
    )
