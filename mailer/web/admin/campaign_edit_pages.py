"""A campaign before it goes out: edit the draft, reorder its notices, delete it; duplicate any."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from werkzeug import Response

from mailer import campaign_drafts, campaigns, clock, db
from mailer.errors import CampaignNotFound, InvalidCampaign
from mailer.models import Campaign
from mailer.web.admin import bp
from mailer.web.admin.auth import audit, login_required
from mailer.web.admin.campaign_pages import _compose_page, compose_values, send_time
from mailer.web.admin.common import to_local_input
from mailer.web.site_context import site_settings


def _campaign(campaign_id: int) -> Campaign:
    campaign = db.get_session().get(Campaign, campaign_id)
    if campaign is None:
        abort(404, f"There is no campaign {campaign_id}.")
    return campaign


def _back(campaign_id: int) -> Response:
    return redirect(url_for("admin.campaign_page", campaign_id=campaign_id), code=303)


@bp.get("/campaigns/<int:campaign_id>/edit")
@login_required
def campaign_edit(campaign_id: int) -> str | Response:
    campaign = _campaign(campaign_id)
    if campaign.status not in campaign_drafts.EDITABLE:
        flash("Only a draft or a scheduled campaign can be edited; duplicate this one.", "error")
        return _back(campaign_id)
    values = {
        "subject": campaign.subject,
        "intro": campaign.intro,
        "send_at": to_local_input(campaign.send_at),
        "topics": campaign.topic_list,
        "notices": [str(n.id) for n in campaigns.campaign_notices(db.get_session(), campaign_id)],
    }
    return _compose_page(values, campaign_id=campaign_id)


@bp.post("/campaigns/<int:campaign_id>/edit")
@login_required
def campaign_save(campaign_id: int) -> Response | tuple[str, int]:
    _campaign(campaign_id)
    values = compose_values(request.form)
    session = db.get_session()
    try:
        send_at = send_time(values["send_at"])
        campaign_drafts.update_campaign(
            session,
            campaign_id,
            subject=values["subject"],
            intro=values["intro"],
            notice_ids=[int(item) for item in values["notices"] if item.isdigit()],
            topics=values["topics"],
        )
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
        return _compose_page(values, str(error), campaign_id=campaign_id), 400
    audit("campaign.edit", f"campaign {campaign_id}", " ".join(values["subject"].split()))
    session.commit()
    flash(f"Campaign {campaign_id} saved.", "ok")
    return _back(campaign_id)


@bp.post("/campaigns/<int:campaign_id>/duplicate")
@login_required
def campaign_duplicate(campaign_id: int) -> Response:
    session = db.get_session()
    try:
        copy_id = campaign_drafts.duplicate_campaign(session, campaign_id, now=clock.now())
    except CampaignNotFound:
        abort(404, f"There is no campaign {campaign_id}.")
    audit("campaign.duplicate", f"campaign {copy_id}", f"copy of campaign {campaign_id}")
    session.commit()
    flash(f"Campaign {copy_id} is a new draft copied from campaign {campaign_id}.", "ok")
    return redirect(url_for("admin.campaign_edit", campaign_id=copy_id), code=303)


@bp.post("/campaigns/<int:campaign_id>/delete")
@login_required
def campaign_delete(campaign_id: int) -> Response:
    session = db.get_session()
    try:
        subject = campaign_drafts.delete_draft(session, campaign_id)
    except CampaignNotFound:
        abort(404, f"There is no campaign {campaign_id}.")
    except InvalidCampaign as error:
        session.rollback()
        flash(f"Not deleted: {error}.", "error")
        return _back(campaign_id)
    audit("campaign.delete", f"campaign {campaign_id}", " ".join(subject.split()))
    session.commit()
    flash(f"Draft “{subject}” deleted.", "ok")
    return redirect(url_for("admin.campaigns_list"), code=303)


@bp.post("/campaigns/<int:campaign_id>/notices/<int:notice_id>/<direction>")
@login_required
def campaign_move_notice(campaign_id: int, notice_id: int, direction: str) -> Response:
    if direction not in ("up", "down"):
        abort(404)
    session = db.get_session()
    try:
        campaign_drafts.move_notice(
            session, campaign_id, notice_id, offset=-1 if direction == "up" else 1
        )
    except CampaignNotFound:
        abort(404, f"There is no campaign {campaign_id}.")
    except InvalidCampaign as error:
        session.rollback()
        flash(f"Not moved: {error}.", "error")
        return _back(campaign_id)
    audit("campaign.reorder", f"campaign {campaign_id}", f"notice {notice_id} {direction}")
    session.commit()
    return _back(campaign_id)
