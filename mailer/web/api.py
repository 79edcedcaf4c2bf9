"""The CMS's JSON API: notices in and out, behind a bearer token. Errors are JSON, not pages."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from mailer import addresses, api_tokens, campaigns, clock, db, notices, site, timestamps
from mailer.errors import (
    CampaignNotFound,
    CampaignStateConflict,
    InvalidAddress,
    InvalidCampaign,
    InvalidNotice,
    SiteNotReady,
)
from mailer.jobs import get_jobs
from mailer.models import Campaign, Notice
from mailer.web.site_context import site_settings

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger("mailer.web.api")

REQUIRED = ("kind", "title", "url")
TEXT_FIELDS = (*REQUIRED, "summary", "image_url", "image_alt", "time_zone", "join_url")
TIME_FIELDS = ("published_at", "starts_at")
FIELDS = frozenset((*TEXT_FIELDS, *TIME_FIELDS, "duration_minutes"))

Reply = tuple[Response, int] | tuple[Response, int, dict[str, str]]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return jsonify(error=message), status, headers or {}


@bp.before_request
def authenticate() -> Reply | None:
    """Refuse the request unless it carries a known bearer token; nothing runs before this."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(
            401,
            "an Authorization: Bearer <token> header is required",
            {"WWW-Authenticate": 'Bearer realm="mailer"'},
        )
    session = db.get_session()
    token_id = api_tokens.authenticate(session, token.strip(), now=clock.now())
    if token_id is None:
        return _error(
            401,
            "the bearer token is not valid",
            {"WWW-Authenticate": 'Bearer realm="mailer", error="invalid_token"'},
        )
    session.commit()  # the use counts even when the request then fails validation
    g.api_token_id = token_id
    return None


@bp.errorhandler(InvalidNotice)
def invalid_notice(error: InvalidNotice) -> Reply:
    return _error(400, str(error))


@bp.errorhandler(InvalidCampaign)
def invalid_campaign(error: InvalidCampaign) -> Reply:
    if isinstance(error, CampaignNotFound):
        return _error(404, str(error))
    conflict = isinstance(error, (CampaignStateConflict, SiteNotReady))
    return _error(409 if conflict else 400, str(error))


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Reply:
    # The app's handler renders an HTML page; a program calling the API wants JSON.
    return _error(error.code or 500, error.description or error.name)


def _payload_as(error: type[Exception]) -> dict[str, Any]:
    try:
        payload = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError) as bad:  # ValueError covers bad JSON and bad UTF-8
        raise error(f"the body is not valid JSON: {bad}") from None
    if not isinstance(payload, dict):
        raise error("the body must be a JSON object")
    return payload


def _payload() -> dict[str, Any]:
    return _payload_as(InvalidNotice)


def _time(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidNotice(f"{name} must be an ISO 8601 string")
    try:
        return timestamps.parse_iso(value)
    except timestamps.NaiveDatetime:
        raise InvalidNotice(
            f"{name} needs a time zone offset, e.g. 2026-12-01T17:00:00+01:00"
        ) from None
    except ValueError:
        raise InvalidNotice(f"{name} is not an ISO 8601 time: {value[:40]!r}") from None


def _draft(payload: dict[str, Any]) -> notices.NoticeDraft:
    """Check the JSON types; notices.check() then checks the values."""
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise InvalidNotice(
            f"unknown field {unknown[0][:40]!r}; known: {', '.join(sorted(FIELDS))}"
        )
    text: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = payload.get(name)
        if value is None and name in REQUIRED:
            raise InvalidNotice(f"{name} is required")
        if value is not None and not isinstance(value, str):
            raise InvalidNotice(f"{name} must be a string")
        text[name] = value or ""
    minutes = payload.get("duration_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)):
        raise InvalidNotice("duration_minutes must be a whole number")
    return notices.NoticeDraft(
        **text,
        published_at=_time("published_at", payload.get("published_at")),
        starts_at=_time("starts_at", payload.get("starts_at")),
        duration_minutes=minutes,
    )


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _as_json(notice: Notice) -> dict[str, Any]:
    return {
        "id": notice.id,
        "kind": notice.kind,
        "title": notice.title,
        "url": notice.url,
        "summary": notice.summary,
        "image_url": notice.image_url,
        "image_alt": notice.image_alt,
        "published_at": _utc(notice.published_at),
        "starts_at": _utc(notice.starts_at),
        "duration_minutes": notice.duration_minutes,
        "time_zone": notice.time_zone,
        "join_url": notice.join_url,
        "source": notice.source,
        "created_at": _utc(notice.created_at),
    }


@bp.post("/notices")
def create_notice() -> Reply:
    """Record a notice from the CMS; 201 with the stored notice and its Location."""
    draft = _draft(_payload())
    session = db.get_session()
    notice_id = notices.create_notice(session, draft, source="api", now=clock.now())
    session.commit()
    log.info(
        "notice created via api",
        extra={"notice_id": notice_id, "api_token_id": g.api_token_id},
    )
    location = url_for("api.get_notice", notice_id=notice_id)
    return jsonify(_as_json(session.get_one(Notice, notice_id))), 201, {"Location": location}


@bp.get("/notices/<int:notice_id>")
def get_notice(notice_id: int) -> Reply:
    """One notice as the API stored it."""
    notice = db.get_session().get(Notice, notice_id)
    if notice is None:
        return _error(404, f"no notice with id {notice_id}")
    return jsonify(_as_json(notice)), 200


@bp.post("/campaigns")
def create_campaign() -> Reply:
    """Create a draft (or, with send_at, a scheduled) campaign; 201 with its progress."""
    payload = _payload()
    if not isinstance(payload.get("notice_ids"), list) or not all(
        isinstance(item, int) for item in payload["notice_ids"]
    ):
        raise InvalidCampaign("notice_ids must be a list of notice ids")
    topics = payload.get("topics", [])
    if not isinstance(topics, list) or not all(isinstance(item, str) for item in topics):
        raise InvalidCampaign('topics must be a list such as ["article", "video"]')
    session = db.get_session()
    send_at = _time("send_at", payload.get("send_at"))
    if send_at is not None:
        site.require_ready(site_settings())  # nothing is scheduled that could not go out
    campaign_id = campaigns.create_campaign(
        session,
        subject=str(payload.get("subject", "")),
        notice_ids=payload["notice_ids"],
        topics=topics,
        intro=str(payload.get("intro", "")),
        send_at=send_at,
        now=clock.now(),
    )
    session.commit()
    location = url_for("api.campaign_progress", campaign_id=campaign_id)
    body = {
        "id": campaign_id,
        **campaigns.progress(session, campaign_id, now=clock.now()).as_dict(),
    }
    return jsonify(body), 201, {"Location": location}


@bp.get("/campaigns/<int:campaign_id>")
def campaign_progress(campaign_id: int) -> Reply:
    """Counts per delivery state, rate and time left."""
    state = campaigns.progress(db.get_session(), campaign_id, now=clock.now())
    return jsonify({"id": campaign_id, **state.as_dict()}), 200


@bp.post("/campaigns/<int:campaign_id>/<any(start, pause, resume, cancel, 'resend-failed'):action>")
def campaign_action(campaign_id: int, action: str) -> Reply:
    """Start, pause, resume, cancel or resend the failed; 409 when the state does not allow it.

    The change is committed before the workers are told; a broker that is
    down then only delays sending (the beat restarts it), so the answer is
    the new state either way.
    """
    session = db.get_session()
    outcome = campaigns.apply_action(
        session, campaign_id, action, now=clock.now(), site=site_settings()
    )
    session.commit()
    if outcome.restart_sending:
        get_jobs().start_sending(campaign_id)
    return campaign_progress(campaign_id)


@bp.post("/campaigns/<int:campaign_id>/test")
def campaign_test(campaign_id: int) -> Reply:
    """Queue one test copy, subject marked [Test], to {"to": address}; 202 once queued.

    The worker sends it and writes the relay's answer into the audit log.
    """
    payload = _payload_as(InvalidCampaign)
    if set(payload) != {"to"} or not isinstance(payload["to"], str):
        raise InvalidCampaign('the body must be {"to": "address"}')
    try:
        address = addresses.normalise(payload["to"], check_deliverability=False)
    except InvalidAddress as error:
        raise InvalidCampaign(f"to: {error}") from None
    if db.get_session().get(Campaign, campaign_id) is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    if not get_jobs().send_test(campaign_id, address, actor=f"api-token:{g.api_token_id}"):
        return _error(503, "the task queue is unreachable; try again in a minute")
    return jsonify(id=campaign_id, test_to=address, status="queued"), 202
