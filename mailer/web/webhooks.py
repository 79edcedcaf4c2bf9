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

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.orm import Session

from mailer import clock, db
from mailer.bounces import events
from mailer.bounces.providers import Refused, mailgun, postmark, sendgrid, ses
from mailer.bounces.report import InvalidEvents, Report
from mailer.settings import Settings

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
PROVIDER_BODY_BYTES = 1024 * 1024  # SendGrid batches events; SES may include headers


def _settings() -> Settings:
    return current_app.extensions["mailer.settings"]


def _error(status: int, message: str, headers: dict[str, str] | None = None):
    return jsonify(error=message), status, headers or {}


def _applied(reports: Callable[[Session], list[Report]]):
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


@bp.post("/bounce")
def bounce():
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
    payload = request.get_json(silent=True)
    if payload is None:
        return _error(400, "the body must be JSON (Content-Type: application/json)")
    return _applied(lambda _session: events.reports_from_events(payload))


@bp.post("/ses")
def amazon_ses():
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


@bp.post("/sendgrid")
def sendgrid_events():
    key = _settings().sendgrid_webhook_key
    if not key:
        return _error(404, "not found")
    request.max_content_length = PROVIDER_BODY_BYTES
    body, headers, now = request.get_data(), request.headers, clock.now()
    return _applied(
        lambda session: sendgrid.reports(sendgrid.verify(session, body, headers, key=key, now=now))
    )


@bp.post("/mailgun")
def mailgun_events():
    key = _settings().mailgun_signing_key
    if not key:
        return _error(404, "not found")
    request.max_content_length = PROVIDER_BODY_BYTES
    body, now = request.get_data(), clock.now()
    return _applied(
        lambda session: mailgun.reports(mailgun.verify(session, body, key=key, now=now))
    )


@bp.post("/postmark")
def postmark_events():
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
