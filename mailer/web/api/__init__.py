"""The JSON API under /api/v1: notices, campaigns and subscribers, behind a bearer token.

Each route declares its request and response models (pydantic, in
`schemas`); flask-openapi3 validates requests against them and builds the
OpenAPI 3.1 document at /api/openapi.json from the same declarations, so
the description cannot drift from what is checked. Every error is an RFC
9457 problem (`problems`).
"""

from __future__ import annotations

from flask import Response, g, request
from flask_openapi3 import APIBlueprint, Tag
from werkzeug.exceptions import HTTPException

from mailer import api_tokens, clock, db
from mailer.errors import (
    CampaignNotFound,
    CampaignStateConflict,
    InvalidCampaign,
    InvalidFilter,
    InvalidNotice,
    SiteNotReady,
    SubscriberNotFound,
)
from mailer.web.api import problems

BEARER = [{"bearer": []}]
bp = APIBlueprint(
    "api",
    __name__,
    url_prefix="/api/v1",
    abp_security=BEARER,
    # Every operation can answer these; each adds its own (404, 409, 422, ...).
    abp_responses={
        **problems.responses(400, 413, 500),
        401: problems.described(
            401,
            "No bearer token, or one that is not valid",
            WWW_Authenticate='Bearer realm="mailer"',
        ),
    },
)
TAGS = {
    "notices": Tag(name="notices", description="New articles, videos and webinars"),
    "campaigns": Tag(name="campaigns", description="Digests of notices sent to subscribers"),
    "subscribers": Tag(name="subscribers", description="Readers: sign up, change, leave, erase"),
}


@bp.before_request
def authenticate() -> Response | None:
    """Refuse the request unless it carries a known bearer token; nothing runs before this."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problems.problem(
            401,
            "an Authorization: Bearer <token> header is required",
            headers={"WWW-Authenticate": 'Bearer realm="mailer"'},
        )
    session = db.get_session()
    token_id = api_tokens.authenticate(session, token.strip(), now=clock.now())
    if token_id is None:
        return problems.problem(
            401,
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="mailer", error="invalid_token"'},
        )
    session.commit()  # the use counts even when the request then fails validation
    g.api_token_id = token_id
    return None


def actor() -> str:
    """Who did it, for the audit log and the consent record: the token, never a person."""
    return f"api-token:{g.api_token_id}"


@bp.errorhandler(InvalidNotice)
@bp.errorhandler(InvalidFilter)
def refused(error: Exception) -> Response:
    # The request had the right shape; what it asks for is not possible.
    return problems.problem(422, str(error))


@bp.errorhandler(InvalidCampaign)
def invalid_campaign(error: InvalidCampaign) -> Response:
    if isinstance(error, CampaignNotFound):
        return problems.problem(404, str(error))
    conflict = isinstance(error, (CampaignStateConflict, SiteNotReady))
    return problems.problem(409 if conflict else 422, str(error))


@bp.errorhandler(SubscriberNotFound)
def no_subscriber(error: SubscriberNotFound) -> Response:
    return problems.problem(404, f"no subscriber with id {error.args[0]}")


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    # The app's handler renders an HTML page; a program calling the API wants a problem.
    return problems.problem(error.code or 500, error.description or error.name)


# The route modules add their operations to `bp` when imported.
from mailer.web.api import campaigns, notices, subscribers  # noqa: E402, F401
