"""The OpenAPI 3.1 document: how the app is described, and where it is served.

flask-openapi3 gathers every operation declared on an APIBlueprint (the API
and the bounce webhook) with its pydantic models; this module names the
document, its security schemes and the one error format, and serves it at
/api/openapi.json without a token (a description holds no data).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask_openapi3 import Info, OpenAPI

from mailer.web.api import problems

DESCRIPTION = """\
The JSON API of mailer, for a site's CMS, CRM and monitoring.

Every call needs `Authorization: Bearer <token>` (`mailer api-token create NAME`
prints one). Every error is an RFC 9457 problem (`application/problem+json`):
400 for a request that does not match its schema (`errors` names each field),
422 for one that does but asks for something impossible, 404, 409 for a state
that does not allow it, 429 for an address that had its share of mail.
"""

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `mailer api-token create NAME`",
    },
    "bounceWebhookSecret": {
        "type": "http",
        "scheme": "bearer",
        "description": "MAILER_BOUNCE_WEBHOOK_SECRET, for relays posting bounce events",
    },
}

bp = Blueprint("openapi_document", __name__)


def app_options() -> dict[str, Any]:
    """What `create_app` gives OpenAPI: the document's head and the one error format."""
    return {
        "info": Info(title="mailer", version="1", description=DESCRIPTION),
        "security_schemes": SECURITY_SCHEMES,
        "doc_ui": False,  # no pages pulling scripts from elsewhere; the console links the JSON
        "validation_error_status": 400,
        "validation_error_model": problems.Problem,
        "validation_error_callback": problems.validation_error,
        "operation_id_callback": lambda name, path, method: name,
    }


@bp.get("/api/openapi.json")
def document() -> Response:
    """The OpenAPI 3.1 description of the API and the bounce webhook."""
    app: OpenAPI = current_app  # type: ignore[assignment]
    return jsonify(app.api_doc)
