"""Campaigns: list, compose, preview, test, schedule or start, live progress, report."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import (
    Response,
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from mailer import addresses, automatic, campaigns, clock, db, stats
from mailer.bounces import history
from mailer.errors import CampaignNotFound, InvalidAddress, InvalidCampaign
from mailer.jobs import get_jobs
from mailer.models import Campaign, CampaignStatus, Notice
from mailer.sending import get_mailroom
from mailer.sending.transport import Outgoing
from mailer.web.admin import bp
from mailer.web.admin.auth import audit, current_account, login_required
from mailer.web.admin.common import (
    form_zone,
    from_local_input,
    local_time,
    to_local_input,
    zone_name,
)
from mailer.web.forms import TOPIC_LABELS
from mailer.web.site_context import site_settings

log = logging.getLogger("mailer.web.admin")
PAGE, NOTICE_CHOICES = 50, 100
# A mail as the sandboxed preview frame gets it: its own styles and images, never a script.
MAIL_FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "font-src https: data:; frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
)


def mail_frame(html: str) -> Response:
    """An HTML mail body for an <iframe sandbox>, with a CSP that blocks scripts."""
    response = make_response(html)
    response.headers["Content-Security-Policy"] = MAIL_FRAME_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _campaign(campaign_id: int) -> Campaign:
    campaign = db.get_session().get(Campaign, campaign_id)
    if campaign is None:
        abort(404, f"There is no campaign {campaign_id}.")
    return campaign


def _start_sending(campaign_id: int) -> None:
    if not get_jobs().start_sending(campaign_id):
        # Committed already: the beat restarts a sending campaign nobody works on.
        flash("The task queue is unreachable; sending starts within a minute.", "error")


@bp.get("/campaigns")
@login_required
def campaigns_list() -> str:
    before = request.args.get("before", type=int)
    rows = stats.campaign_counts(
        db.get_session(), limit=PAGE + 1, before_id=before, hide_empty_automatic=True
    )
    return render_template(
        "web/admin/campaigns.html",
        campaigns=rows[:PAGE],
        next_before=rows[PAGE - 1].id if len(rows) > PAGE else None,
        automatic=automatic.status(db.get_session(), latest=0),
    )


@bp.post("/automatic/<action>")
@login_required
def automatic_switch(action: str) -> Response:
    """Pause or resume every automatic send at once (as-published, weekly, reminders)."""
    if action not in {"pause", "resume"}:
        abort(404)
    session = db.get_session()
    actor = current_account().email
    if action == "pause":
        automatic.pause(session, now=clock.now(), by=actor)
        resumed: list[int] = []
    else:
        resumed = automatic.resume(session, now=clock.now(), by=actor)
    audit(f"automatic.{action}", "automatic sending")
    session.commit()  # before the workers are told: they must see the new state
    for campaign_id in resumed:
        _start_sending(campaign_id)
    flash("Automatic sending paused." if action == "pause" else "Automatic sending resumed.", "ok")
    return redirect(url_for("admin.campaigns_list"), code=303)


def _compose_page(values: dict, error: str = "", campaign_id: int | None = None) -> str:
    session = db.get_session()
    chosen_notices = [int(item) for item in values.get("notices", []) if str(item).isdigit()]
    recent = list(session.scalars(select(Notice).order_by(Notice.id.desc()).limit(NOTICE_CHOICES)))
    # An older notice already in the campaign stays in the list, ticked.
    missing = set(chosen_notices) - {notice.id for notice in recent}
    older = session.scalars(select(Notice).where(Notice.id.in_(missing))).all() if missing else []
    chosen_topics = values.get("topics") or list(site_settings().default_topics)
    return render_template(
        "web/admin/campaign_compose.html",
        values=values,
        campaign_id=campaign_id,
        notices=[*older, *recent],
        topics=TOPIC_LABELS,
        chosen_topics=chosen_topics,
        chosen_notices=set(chosen_notices),
        recipients=campaigns.count_audience(
            session, topics=chosen_topics, notice_ids=chosen_notices
        ),
        zone=zone_name(),
        error=error,
    )


def compose_values(form) -> dict:
    """The compose form's fields, as typed (shown again when they are refused)."""
    return {
        "subject": form.get("subject", ""),
        "intro": form.get("intro", ""),
        "send_at": form.get("send_at", ""),
        "topics": form.getlist("topics"),
        "notices": form.getlist("notices"),
    }


def send_time(value: str) -> datetime | None:
    """The form's send time, typed in the person's zone; InvalidCampaign if malformed."""
    try:
        return from_local_input(value, form_zone())
    except ValueError as error:
        raise InvalidCampaign(f"Send time: {error}") from None


@bp.get("/campaigns/new")
@login_required
def campaign_new() -> str:
    return _compose_page({"notices": request.args.getlist("notices")})


@bp.post("/campaigns/new")
@login_required
def campaign_create() -> Response | tuple[str, int]:
    values = compose_values(request.form)
    session = db.get_session()
    try:
        send_at = send_time(values["send_at"])
        campaign_id = campaigns.create_campaign(
            session,
            subject=values["subject"],
            notice_ids=[int(item) for item in values["notices"] if item.isdigit()],
            topics=values["topics"],
            intro=values["intro"],
            now=clock.now(),
        )
        if send_at is not None:  # checked there: a time in the past is refused
            campaigns.apply_action(
                session,
                campaign_id,
                "schedule",
                now=clock.now(),
                site=site_settings(),
                send_at=send_at,
            )
    except InvalidCampaign as error:
        session.rollback()
        return _compose_page(values, str(error)), 400
    audit("campaign.create", f"campaign {campaign_id}", " ".join(values["subject"].split()))
    session.commit()
    flash(f"Campaign {campaign_id} saved. Preview it, send yourself a test, then start it.", "ok")
    return redirect(url_for("admin.campaign_page", campaign_id=campaign_id), code=303)


@bp.get("/campaigns/audience")
@login_required
def campaign_audience() -> Response:
    """How many subscribers the compose form's choice would reach (polled by admin.js)."""
    notice_ids = [int(item) for item in request.args.getlist("notices") if item.isdigit()]
    count = campaigns.count_audience(
        db.get_session(), topics=request.args.getlist("topics"), notice_ids=notice_ids
    )
    return jsonify(recipients=count)


@bp.get("/campaigns/<int:campaign_id>")
@login_required
def campaign_page(campaign_id: int) -> str:
    """Before the start: preview, test, schedule, start. After: live progress and report."""
    campaign = _campaign(campaign_id)
    session = db.get_session()
    notices = campaigns.campaign_notices(session, campaign_id)
    report = stats.campaign_report(session, campaign_id)
    return render_template(
        "web/admin/campaign.html",
        campaign=campaign,
        notices=notices,
        report=report,
        progress=_progress(campaign_id),
        failures=stats.failed_deliveries(session, campaign_id),
        rates=history.rates(session, [campaign_id])[campaign_id],
        recipients=campaigns.count_audience(
            session, topics=campaign.topic_list, notice_ids=[notice.id for notice in notices]
        ),
        send_at=to_local_input(campaign.send_at),
        zone=zone_name(),
    )


def _progress(campaign_id: int) -> dict[str, object]:
    session = db.get_session()
    state = campaigns.progress(session, campaign_id, now=clock.now()).as_dict()
    report = stats.campaign_report(session, campaign_id)
    if report is None:  # _campaign() above found it
        abort(404)
    done = report.total - report.pending
    finished = state["status"] == CampaignStatus.FINISHED
    percent = 100 if finished and not report.pending else int(100 * done / (report.total or 1))
    took = ""
    if report.started_at and report.finished_at:
        took = f"{round((report.finished_at - report.started_at).total_seconds())} seconds"
    return {
        **state,
        "done": done,
        "percent": percent,
        "bounced": report.bounced,
        "unsubscribed": report.unsubscribed,
        "started_at": local_time(report.started_at) or "–",
        "finished_at": local_time(report.finished_at) or "not yet",
        "took": took or "–",
    }


@bp.get("/campaigns/<int:campaign_id>/progress.json")
@login_required
def campaign_progress(campaign_id: int) -> Response:
    """The live counts the progress page polls (admin.js)."""
    _campaign(campaign_id)
    return jsonify(_progress(campaign_id))


def _sample(campaign_id: int, to: str) -> Outgoing | None:
    """The campaign as a subscriber of all its topics gets it (as `mailer campaign preview`)."""
    with db.sessions()() as session:
        return get_mailroom().sample(session, campaign_id, to=to, now=clock.now())


@bp.get("/campaigns/<int:campaign_id>/preview")
@login_required
def campaign_preview(campaign_id: int) -> str:
    campaign = _campaign(campaign_id)
    sample = _sample(campaign_id, "preview@example.com")
    text = sample.message.get_body(("plain",)).get_content() if sample else ""
    return render_template("web/admin/campaign_preview.html", campaign=campaign, text=text)


@bp.get("/campaigns/<int:campaign_id>/preview.html")
@login_required
def campaign_preview_html(campaign_id: int) -> Response:
    _campaign(campaign_id)
    sample = _sample(campaign_id, "preview@example.com")
    if sample is None:
        return mail_frame("<p>None of the campaign's notices match its topics.</p>")
    return mail_frame(sample.message.get_body(("html",)).get_content())


@bp.post("/campaigns/<int:campaign_id>/test")
@login_required
def campaign_test(campaign_id: int) -> Response:
    """Queue one copy, subject marked [Test], to the address typed in (as `send-test`).

    The worker sends it and writes the relay's answer into the audit log: no
    SMTP dialogue inside a web request.
    """
    _campaign(campaign_id)
    target = url_for("admin.campaign_page", campaign_id=campaign_id)
    try:
        address = addresses.normalise(request.form.get("to", ""), check_deliverability=False)
    except InvalidAddress as error:
        flash(f"Test not sent: {error}", "error")
        return redirect(target, code=303)
    if _sample(campaign_id, address) is None:
        flash("Test not sent: none of the campaign's notices match its topics.", "error")
    elif get_jobs().send_test(campaign_id, address, actor=current_account().email):
        flash(f"Test on its way to {address}; the audit log shows the relay's answer.", "ok")
    else:
        flash("Test not sent: the task queue is unreachable; try again in a minute.", "error")
    return redirect(target, code=303)


@bp.post("/campaigns/<int:campaign_id>/<action>")
@login_required
def campaign_action(campaign_id: int, action: str) -> Response:
    if action not in campaigns.ACTIONS:
        abort(404)
    _campaign(campaign_id)
    session = db.get_session()
    try:
        send_at = send_time(request.form.get("send_at", "")) if action == "schedule" else None
        outcome = campaigns.apply_action(
            session, campaign_id, action, now=clock.now(), site=site_settings(), send_at=send_at
        )
    except CampaignNotFound:
        abort(404)
    except InvalidCampaign as error:
        session.rollback()
        flash(f"Not done: {error}.", "error")
    else:
        audit(f"campaign.{action}", f"campaign {campaign_id}", outcome.message)
        session.commit()  # before the workers are told: they must see the new state
        if outcome.restart_sending:
            _start_sending(campaign_id)
        flash(outcome.message, "ok")
    return redirect(url_for("admin.campaign_page", campaign_id=campaign_id), code=303)
