"""`POST /webhooks/bounce`: bounces and complaints from relays that report over HTTP.

Authenticated by MAILER_BOUNCE_WEBHOOK_SECRET as a bearer token; without
that setting the endpoint does not exist (404). The body is checked whole
before anything is applied, so a bad event leaves the others unapplied too
and the relay can send the corrected batch again.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from mailer import bounces, clock, db

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def _error(status: int, message: str, headers: dict[str, str] | None = None):
    return jsonify(error=message), status, headers or {}


@bp.before_request
def authenticate() -> tuple[Response, int, dict[str, str]] | None:
    secret = current_app.extensions["mailer.settings"].bounce_webhook_secret
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


@bp.post("/bounce")
def bounce():
    payload = request.get_json(silent=True)
    if payload is None:
        return _error(400, "the body must be JSON (Content-Type: application/json)")
    session = db.get_session()
    settings = current_app.extensions["mailer.settings"]
    try:
        counts = bounces.apply_events(
            session, payload, secret_key=settings.secret_keys, now=clock.now()
        )
    except bounces.InvalidEvents as error:
        session.rollback()
        return _error(400, str(error))
    session.commit()
    return jsonify(applied=sum(counts.values()), outcomes=dict(counts))
