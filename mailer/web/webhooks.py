"""Bounce and complaint webhooks: the generic one and the sending providers' own.

Each endpoint exists only while its setting is set (404 otherwise). The
generic `POST /webhooks/bounce` takes MAILER_BOUNCE_WEBHOOK_SECRET as a
bearer token; the providers' endpoints check the provider's own proof
(mailer.bounces.providers). A call that fails it answers 401 or 403, a body
that is not what the provider sends answers 400, and neither changes
anything: the whole call is applied in one transaction or not at all.
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Literal

from flask import Response, current_app, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from mailer import clock, db
from mailer.bounces import events
from mailer.bounces.providers import Refused, mailgun, postmark, sendgrid, ses
from mailer.bounces.report import InvalidEvents, Report
from mailer.settings import Settings
from mailer.web.api import problems
from mailer.web.api.fields import optional_text, text

TAG = Tag(name="webhooks", description="Bounces and complaints reported by relays and providers")
bp = APIBlueprint(
    "webhooks",
    __name__,
    url_prefix="/webhooks",
    abp_tags=[TAG],
    abp_responses=problems.responses(400, 404, 413, 500),
)
PROVIDER_BODY_BYTES = 1024 * 1024  # SendGrid batches events; SES may include headers
PROVIDER_RESPONSES = problems.responses(401, 403)


# An event names its mail by `email` or `message_id` (or both): said so in the
# schema too, so that what the document allows is what the endpoint takes.
NAMES_ITS_MAIL = {"anyOf": [{"required": ["email"]}, {"required": ["message_id"]}]}


class _EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=NAMES_ITS_MAIL)

    email: str = optional_text(320)  # type: ignore[assignment]
    message_id: str = optional_text(250, description="The Message-ID we sent, brackets optional")  # type: ignore[assignment]
    diagnostic: str = text(10_000, default="", description="What the receiving server said")

    @model_validator(mode="after")
    def _names_its_mail(self) -> _EventIn:
        if not (self.email or self.message_id):
            raise ValueError("an event needs an email or a message_id")
        return self


class BounceIn(_EventIn):
    """A bounce: hard (the address is gone) or soft (try again later)."""

    type: Literal["bounce"]
    bounce_type: Literal["hard", "soft"]


class ComplaintIn(_EventIn):
    """The recipient marked a mail as spam."""

    type: Literal["complaint"]


class BounceEventsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "type": "bounce",
                            "bounce_type": "hard",
                            "email": "ann@example.org",
                            "message_id": "<1a2b3c@example.com>",
                            "diagnostic": "550 5.1.1 user unknown",
                        },
                        {"type": "complaint", "email": "bob@example.org"},
                    ]
                }
            ]
        },
    )

    events: list[Annotated[BounceIn | ComplaintIn, Field(discriminator="type")]] = Field(
        min_length=1, max_length=events.MAX_EVENTS
    )


class Applied(BaseModel):
    """How many events changed something, by outcome (hard_bounce, complaint, duplicate, ...)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"applied": 2, "outcomes": {"hard_bounce": 1, "complaint": 1}}]
        }
    )

    applied: int
    outcomes: dict[str, int]


def _settings() -> Settings:
    return current_app.extensions["mailer.settings"]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return problems.problem(status, message, headers=headers)


def _applied(reports: Callable[[Session], list[Report]]) -> Response:
    """Verify and read the call with `reports`, apply what it says, answer with the counts."""
    session = db.get_session()
    try:
        found = reports(session)
        counts: Counter[str] = events.apply_reports(
            session, found, secret_key=_settings().secret_keys, now=clock.now()
        )
    except Refused as refused:
        session.rollback()
        current_app.logger.warning("webhook %s refused: %s", request.path, refused.reason)
        return _error(refused.status, refused.reason)
    except InvalidEvents as error:
        session.rollback()
        return _error(400, str(error))
    session.commit()
    return jsonify(applied=sum(counts.values()), outcomes=dict(counts))


def _bounce_secret_checked() -> Response | None:
    secret = _settings().bounce_webhook_secret
    if not secret:
        return _error(404, "not found")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Constant time: the comparison must not reveal how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), secret.encode()
    ):
        return _error(
            401,
            "an Authorization: Bearer header with the webhook secret is required",
            {"WWW-Authenticate": 'Bearer realm="mailer-webhooks"'},
        )
    return None


@bp.before_request
def _generic_webhook_auth() -> Response | None:
    # Before the body is validated: a caller without the secret learns nothing from it.
    if request.endpoint == "webhooks.bounce":
        return _bounce_secret_checked()
    return None


@bp.post(
    "/bounce",
    operation_id="postBounceEvents",
    security=[{"bounceWebhookSecret": []}],
    responses={200: Applied, **problems.responses(401, 422)},
)
def bounce(body: BounceEventsIn) -> Response:
    """Report bounces and complaints

    For relays that report over HTTP. Up to 1000 events a call, checked
    before any is applied: one bad event leaves the whole call unapplied.
    404 while MAILER_BOUNCE_WEBHOOK_SECRET is empty.
    """
    payload = body.model_dump(exclude_none=True)
    try:
        reports = events.reports_from_events(payload)
    except InvalidEvents as error:
        return _error(422, str(error))
    return _applied(lambda _session: reports)


@bp.post(
    "/ses",
    operation_id="postSesNotification",
    security=[],
    responses={200: Applied, **PROVIDER_RESPONSES},
)
def amazon_ses() -> Response:
    """Amazon SES notifications (through an SNS subscription)

    Checked against Amazon's signature; 404 while MAILER_SES_TOPIC_ARNS is empty.
    """
    settings = _settings()
    if not settings.ses_topics:
        return _error(404, "not found")
    request.max_content_length = PROVIDER_BODY_BYTES
    body, origin, now = request.get_data(), settings.sns_fetch_origin, clock.now()
    envelope: dict = {}

    def read(session: Session) -> list[Report]:
        topics = settings.ses_topics
        envelope.update(ses.verify(session, body, topics=topics, origin=origin, now=now))
        if envelope["Type"] == "SubscriptionConfirmation":
            ses.confirm_subscription(envelope, origin=origin)
            return []
        return ses.reports(envelope) if envelope["Type"] == "Notification" else []

    return _applied(read)


@bp.post(
    "/sendgrid",
    operation_id="postSendgridEvents",
    security=[],
    responses={200: Applied, **PROVIDER_RESPONSES},
)
def sendgrid_events() -> Response:
    """SendGrid's Event Webhook

    Checked against its ECDSA signature; 404 while MAILER_SENDGRID_WEBHOOK_KEY is empty.
    """
    key = _settings().sendgrid_webhook_key
    if not key:
        return _error(404, "not found")
    request.max_content_length = PROVIDER_BODY_BYTES
    body, headers, now = request.get_data(), request.headers, clock.now()
    return _applied(
        lambda session: sendgrid.reports(sendgrid.verify(session, body, headers, key=key, now=now))
    )


@bp.post(
    "/mailgun",
    operation_id="postMailgunEvents",
    security=[],
    responses={200: Applied, **PROVIDER_RESPONSES},
)
def mailgun_events() -> Response:
    """Mailgun's webhooks

    Checked against their HMAC; 404 while MAILER_MAILGUN_SIGNING_KEY is empty.
    """
    key = _settings().mailgun_signing_key
    if not key:
        return _error(404, "not found")
    request.max_content_length = PROVIDER_BODY_BYTES
    body, now = request.get_data(), clock.now()
    return _applied(
        lambda session: mailgun.reports(mailgun.verify(session, body, key=key, now=now))
    )


@bp.post(
    "/postmark",
    operation_id="postPostmarkEvents",
    security=[],
    responses={200: Applied, **PROVIDER_RESPONSES},
)
def postmark_events() -> Response:
    """Postmark's bounce and spam complaint webhooks

    Basic auth over https; 404 while MAILER_POSTMARK_WEBHOOK_AUTH is empty.
    """
    auth = _settings().postmark_webhook_auth
    if not auth:
        return _error(404, "not found")
    request.max_content_length = PROVIDER_BODY_BYTES
    try:
        given = request.headers.get("Authorization", "")
        postmark.check_auth(given, auth, secure=request.is_secure)
    except Refused as refused:
        headers = {"WWW-Authenticate": 'Basic realm="mailer-webhooks"'}
        return _error(refused.status, refused.reason, headers if refused.status == 401 else None)
    try:
        payload = json.loads(request.get_data())
    except ValueError:
        return _error(400, "the body must be JSON")
    return _applied(lambda _session: postmark.reports(payload))
