"""One error format for the whole API: RFC 9457 problem details (application/problem+json).

Every 4xx and 5xx of /api/v1 and of the bounce webhook is one of these:
`{"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "...",
"errors": [{"pointer": "/title", "detail": "..."}]}`; `errors` comes with a
request that did not match its schema, one entry per field. `type` stays
"about:blank": the status and the detail say all there is to say.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Response, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MEDIA_TYPE = "application/problem+json"
# The words pydantic uses for the commonest errors, said the way a person calling the API
# would put them.
PLAIN_WORDS = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


class FieldError(BaseModel):
    pointer: str = Field(description="JSON Pointer (RFC 6901) to the field in the request body")
    detail: str


class Problem(BaseModel):
    """An error, as RFC 9457 describes it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Bad Request",
                    "status": 400,
                    "detail": "title: Input should be a valid string",
                    "errors": [{"pointer": "/title", "detail": "Input should be a valid string"}],
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldError] | None = None


def problem(
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
) -> Response:
    """The response for one problem."""
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    response = Response(body.model_dump_json(exclude_none=True), status=status, mimetype=MEDIA_TYPE)
    response.headers.extend(headers or {})
    return response


def _pointer(location: tuple[int | str, ...]) -> str:
    return "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in location)


def _name(location: tuple[int | str, ...]) -> str:
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name or "the body"


def _body_trouble() -> str | None:
    """Why the body could not be read as JSON at all, or None when it could."""
    if request.method in ("GET", "HEAD", "DELETE"):
        return None
    if not request.is_json:
        return "the body must be JSON (Content-Type: application/json)"
    try:
        json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError) as bad:  # ValueError covers bad JSON and bad UTF-8
        return f"the body is not valid JSON: {str(bad)[:200]}"
    return None


def _in_body(location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The location as the body has it: pydantic adds the tag of a tagged union
    (events[0].bounce.colour) that the caller never wrote."""
    body = request.get_json(silent=True)
    found: list[int | str] = []
    for number, part in enumerate(location):
        last = number == len(location) - 1
        within = (isinstance(body, dict) and part in body) or (
            isinstance(body, list) and isinstance(part, int) and part < len(body)
        )
        if within:
            body = body[part]  # type: ignore[index]
        elif not last and isinstance(body, dict):
            continue  # a union's tag
        found.append(part)
    return tuple(found)


def validation_error(error: ValidationError) -> Response:
    """400 for a request that does not match its schema, naming each field."""
    trouble = _body_trouble()
    if trouble is not None and all(item["loc"] == () for item in error.errors()):
        return problem(400, trouble)
    errors = []
    for item in error.errors(include_url=False):
        location = _in_body(tuple(item["loc"]))
        words = PLAIN_WORDS.get(item["type"], item["msg"])
        if item["type"] == "value_error":  # our own validators' words, without pydantic's prefix
            words = str(item.get("ctx", {}).get("error", words))
        errors.append(FieldError(pointer=_pointer(location), detail=words))
    first = error.errors(include_url=False)[0]
    detail = f"{_name(_in_body(tuple(first['loc'])))}: {errors[0].detail}"
    return problem(400, detail, errors=errors)


def responses(*statuses: int) -> dict[int, dict[str, Any]]:
    """The OpenAPI responses of these error statuses, all in the problem format."""
    return {status: described(status, HTTPStatus(status).description) for status in statuses}


def described(status: int, description: str, **headers: str) -> dict[str, Any]:
    """One problem response for the OpenAPI document, with `description` and headers."""
    response: dict[str, Any] = {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = {
            name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response
