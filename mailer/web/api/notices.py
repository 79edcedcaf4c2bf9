"""POST /api/v1/notices and GET /api/v1/notices/{id}: the CMS records new content."""

from __future__ import annotations

import logging
from typing import Literal

from flask import Response, g, jsonify, url_for
from pydantic import BaseModel, ConfigDict, Field

from mailer import clock, db, notices
from mailer.models import Notice
from mailer.web.api import TAGS, bp, problems
from mailer.web.api.fields import Id, UtcOut, UtcTime, text, whole_number

log = logging.getLogger("mailer.web.api")
EXAMPLE = {
    "kind": "article",
    "title": "Naltrexone for Fibromyalgia",
    "url": "https://site.example/articles/naltrexone",
    "summary": "What the trials found.",
    "published_at": "2026-03-02T09:30:00+01:00",
}


class NoticeIn(BaseModel):
    """A new article, video or webinar. Webinars also need starts_at and duration_minutes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    kind: Literal["article", "video", "webinar"]
    title: str = text(300, description="Shown as the notice's headline")
    url: str = text(2048, description="http(s) URL of the content")
    summary: str = text(5000, default="")
    image_url: str = text(2048, default="", description="http(s) URL of an image, or empty")
    image_alt: str = text(
        300, default="", description="The image's text for those who cannot see it"
    )
    published_at: UtcTime | None = Field(default=None, description="Default: now")
    starts_at: UtcTime | None = Field(default=None, description="Webinars: when it starts")
    duration_minutes: whole_number(1, 24 * 60) | None = None  # type: ignore[valid-type]
    time_zone: str = text(64, default="", description="IANA zone the webinar is announced in")
    join_url: str = text(2048, default="", description="Webinars: where to join")


class NoticeOut(BaseModel):
    """A notice as stored; times in UTC."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE,
                    "id": 12,
                    "published_at": "2026-03-02T08:30:00+00:00",
                    "image_url": "",
                    "image_alt": "",
                    "starts_at": None,
                    "duration_minutes": None,
                    "time_zone": "",
                    "join_url": "",
                    "source": "api",
                    "created_at": "2026-03-02T08:31:12+00:00",
                }
            ]
        }
    )

    id: int
    kind: str
    title: str
    url: str
    summary: str
    image_url: str
    image_alt: str
    published_at: UtcOut
    starts_at: UtcOut | None
    duration_minutes: int | None
    time_zone: str
    join_url: str
    source: str = Field(description="Where it came from: api, admin, cli or feed")
    created_at: UtcOut


class NoticePath(BaseModel):
    notice_id: Id


def notice_json(notice: Notice) -> dict[str, object]:
    return NoticeOut.model_validate(notice, from_attributes=True).model_dump(mode="json")


@bp.post(
    "/notices",
    tags=[TAGS["notices"]],
    operation_id="createNotice",
    responses={201: NoticeOut, **problems.responses(422)},
)
def create_notice(body: NoticeIn) -> tuple[Response, int, dict[str, str]]:
    """Record a notice

    The answer is the stored notice with its Location. A webinar without
    its start, a URL that is not http(s) or an unknown time zone is a 422.
    """
    session = db.get_session()
    draft = notices.NoticeDraft(**body.model_dump(exclude_none=False))
    notice_id = notices.create_notice(session, draft, source="api", now=clock.now())
    session.commit()
    log.info("notice created via api", extra={"notice_id": notice_id, "api_token": g.api_token_id})
    location = url_for("api.get_notice", notice_id=notice_id)
    return jsonify(notice_json(session.get_one(Notice, notice_id))), 201, {"Location": location}


@bp.get(
    "/notices/<int:notice_id>",
    tags=[TAGS["notices"]],
    operation_id="getNotice",
    responses={200: NoticeOut, **problems.responses(404)},
)
def get_notice(path: NoticePath) -> Response | tuple[Response, int]:
    """One notice as stored"""
    notice = db.get_session().get(Notice, path.notice_id)
    if notice is None:
        return problems.problem(404, f"no notice with id {path.notice_id}")
    return jsonify(notice_json(notice))
