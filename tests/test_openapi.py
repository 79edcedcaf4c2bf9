"""The OpenAPI 3.1 document: valid, complete, and true of the live API (schemathesis).

schemathesis generates requests from the document (valid ones and invalid
ones) for every operation and sends them, authenticated, to the app on both
of its real databases' backends; each answer must be no 5xx, match its
documented schema, status and content type, and an invalid request must be
refused with a 4xx in the problem format.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode

from mailer import api_tokens, clock
from tests.helpers import add_confirmed

WEBHOOK_SECRET = "webhook-secret-0123456789"
# Enough examples per operation to find what a fuzzer finds, few enough for 2 cores:
# about 17 operations x (examples + explicit and boundary cases).
MAX_EXAMPLES = 25
# A request of the right shape may still ask for something impossible (a notice
# that does not exist, an address that cannot be mailed): the API answers 422
# for that, and 409 or 429 for a state or limit; none of these means it
# rejected valid data. (5xx is left out of both lists: it is never right.)
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
            },
            # A body over MAILER_MAX_BODY_BYTES (1001 events, say) is refused before it
            # is read: 413, in the problem format like every other refusal.
            "negative_data_rejection": {
                "expected-statuses": [
                    "400",
                    "401",
                    "403",
                    "404",
                    "405",
                    "406",
                    "409",
                    "413",
                    "415",
                    "422",
                    "428",
                    "429",
                ]
            },
        }
    }
)


def test_the_document_is_valid_openapi_3_1_and_needs_no_token(client):
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    validate(document)  # raises on anything the specification does not allow
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["properties"])


def test_every_api_route_is_described(app: Flask, client):
    """Nothing the app routes under /api/v1 or /webhooks is missing from the document."""
    document = client.get("/api/openapi.json").get_json()
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    routed = {
        (method, re.sub(r"<(?:[^<>]*:)?([^<>:]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/v1/", "/webhooks/"))
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert routed == described
    for path, operations in document["paths"].items():
        for operation in operations.values():
            errors = [status for status in operation["responses"] if status[0] in "45"]
            assert errors, path
            for status in errors:
                assert set(operation["responses"][status]["content"]) == {
                    "application/problem+json"
                }, (path, status)


def _fuzzed_app(make_app) -> tuple[Flask, str]:
    app = make_app(bounce_webhook_secret=WEBHOOK_SECRET)
    with app.extensions["mailer.sessionmaker"]() as session:
        token = api_tokens.create_token(session, name="schemathesis", now=clock.now())
        for number in range(3):
            add_confirmed(session, f"reader{number}@example.org")
        session.commit()
    return app, token


def _fuzz(operation, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def exchange(case) -> None:
        case.call_and_validate(headers=headers)

    exchange()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_description(make_app, mode):
    app, token = _fuzzed_app(make_app)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        described = operation.definition.raw
        if mode is GenerationMode.NEGATIVE and not (
            described.get("parameters") or described.get("requestBody")
        ):
            continue  # nothing to get wrong: the providers' endpoints take their own formats
        secret = WEBHOOK_SECRET if operation.path == "/webhooks/bounce" else token
        try:
            _fuzz(operation, mode, {"Authorization": f"Bearer {secret}"})
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    assert not failures, "\n\n".join(failures)
