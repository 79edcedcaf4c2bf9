"""/api/v1/campaigns: compose a digest of notices, start it and watch it go out."""

from __future__ import annotations

from typing import Literal

from flask import Response, jsonify, url_for
from pydantic import BaseModel, ConfigDict, Field

from mailer import addresses, campaigns, clock, db, site
from mailer.errors import CampaignNotFound, InvalidAddress, InvalidCampaign
from mailer.jobs import get_jobs
from mailer.models import Campaign
from mailer.web.api import TAGS, actor, bp, problems
from mailer.web.api.fields import Id, UtcTime, text
from mailer.web.site_context import site_settings

TopicName = Literal["article", "video", "webinar"]


class CampaignIn(BaseModel):
    """A draft campaign, or with send_at a scheduled one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"subject": "New this week", "notice_ids": [12, 13], "topics": ["article"]}
            ]
        },
    )

    subject: str = text(200)
    notice_ids: list[Id] = Field(min_length=1, max_length=100)
    topics: list[TopicName] = Field(default=[], description="Audience; empty: every topic")
    intro: str = text(10_000, default="", description="Text above the notices")
    send_at: UtcTime | None = Field(default=None, description="Schedule it; the beat starts it")


class CampaignProgress(BaseModel):
    """Counts per delivery state, the rate so far and the time left."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "status": "sending",
                    "total": 1200,
                    "sent": 800,
                    "failed": 2,
                    "bounced": 1,
                    "skipped": 0,
                    "pending": 397,
                    "rate": 48.5,
                    "seconds_left": 8.2,
                }
            ]
        }
    )

    id: int
    status: Literal["draft", "scheduled", "sending", "paused", "cancelled", "finished"]
    total: int
    sent: int
    failed: int
    bounced: int
    skipped: int
    pending: int
    rate: float = Field(description="messages a second since the start")
    seconds_left: float | None


class CampaignPath(BaseModel):
    campaign_id: Id


class ActionPath(BaseModel):
    campaign_id: Id
    action: Literal["start", "pause", "resume", "cancel", "resend-failed"]


class TestMailIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"to": "me@x.org"}]})

    to: str = text(320, description="Where the [Test] copy goes")


class TestMailOut(BaseModel):
    id: int
    test_to: str
    status: Literal["queued"]


def progress_json(campaign_id: int) -> dict[str, object]:
    state = campaigns.progress(db.get_session(), campaign_id, now=clock.now())
    return CampaignProgress(id=campaign_id, **state.as_dict()).model_dump(mode="json")  # type: ignore[arg-type]


@bp.post(
    "/campaigns",
    tags=[TAGS["campaigns"]],
    operation_id="createCampaign",
    responses={201: CampaignProgress, **problems.responses(409, 422)},
)
def create_campaign(body: CampaignIn) -> tuple[Response, int, dict[str, str]]:
    """Create a campaign

    A draft, or with `send_at` a scheduled campaign. Unknown notice ids are a
    422; scheduling before the site's settings allow sending (a postal
    address) a 409.
    """
    session = db.get_session()
    if body.send_at is not None:
        site.require_ready(site_settings())  # nothing is scheduled that could not go out
    campaign_id = campaigns.create_campaign(
        session,
        subject=body.subject,
        notice_ids=body.notice_ids,
        topics=body.topics,
        intro=body.intro,
        send_at=body.send_at,
        now=clock.now(),
    )
    session.commit()
    location = url_for("api.campaign_progress", campaign_id=campaign_id)
    return jsonify(progress_json(campaign_id)), 201, {"Location": location}


@bp.get(
    "/campaigns/<int:campaign_id>",
    tags=[TAGS["campaigns"]],
    operation_id="getCampaign",
    responses={200: CampaignProgress, **problems.responses(404)},
)
def campaign_progress(path: CampaignPath) -> Response:
    """A campaign's progress"""
    return jsonify(progress_json(path.campaign_id))


@bp.post(
    "/campaigns/<int:campaign_id>/<any(start, pause, resume, cancel, 'resend-failed'):action>",
    tags=[TAGS["campaigns"]],
    operation_id="campaignAction",
    responses={200: CampaignProgress, **problems.responses(404, 409, 422)},
)
def campaign_action(path: ActionPath) -> Response:
    """Start, pause, resume, cancel, or resend the failed

    409 when the campaign's state does not allow it. The change is committed
    before the workers are told; a broker that is down only delays sending
    (the beat restarts it), so the answer is the new state either way.
    """
    session = db.get_session()
    outcome = campaigns.apply_action(
        session, path.campaign_id, path.action, now=clock.now(), site=site_settings()
    )
    session.commit()
    if outcome.restart_sending:
        get_jobs().start_sending(path.campaign_id)
    return jsonify(progress_json(path.campaign_id))


@bp.post(
    "/campaigns/<int:campaign_id>/test",
    tags=[TAGS["campaigns"]],
    operation_id="sendCampaignTest",
    responses={202: TestMailOut, **problems.responses(404, 422, 503)},
)
def campaign_test(path: CampaignPath, body: TestMailIn) -> Response | tuple[Response, int]:
    """Send one test copy

    Queues one copy, its subject marked [Test]; the worker sends it and
    writes the relay's answer into the audit log.
    """
    try:
        address = addresses.normalise(body.to, check_deliverability=False)
    except InvalidAddress as error:
        raise InvalidCampaign(f"to: {error}") from None
    if db.get_session().get(Campaign, path.campaign_id) is None:
        raise CampaignNotFound(f"no campaign with id {path.campaign_id}")
    if not get_jobs().send_test(path.campaign_id, address, actor=actor()):
        return problems.problem(503, "the task queue is unreachable; try again in a minute")
    return jsonify(id=path.campaign_id, test_to=address, status="queued"), 202
