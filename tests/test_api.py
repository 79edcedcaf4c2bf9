"""The CMS's JSON API: bearer tokens from the CLI, notices in, clear JSON errors out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer import api_tokens, clock
from mailer.cli import main
from mailer.models import ApiToken, Notice

ARTICLE = {
    "kind": "article",
    "title": "Managing  blood pressure at home",
    "url": "https://health.example/articles/blood-pressure",
    "summary": "What the numbers mean.",
    "image_url": "https://health.example/img/bp.jpg",
    "published_at": "2026-03-02T09:30:00+01:00",
}


@pytest.fixture
def token(session: Session) -> str:
    plaintext = api_tokens.create_token(session, name="cms", now=clock.now())
    session.commit()
    return plaintext


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _notices(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Notice)) or 0


def test_post_creates_the_notice_and_returns_it(client, session, token):
    response = client.post("/api/v1/notices", json=ARTICLE, headers=_bearer(token))

    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/notices/{body['id']}"
    assert body["title"] == "Managing blood pressure at home"
    assert body["published_at"] == "2026-03-02T08:30:00+00:00"
    assert body["source"] == "api"
    notice = session.get_one(Notice, body["id"])
    assert (notice.kind, notice.url, notice.image_url, notice.source) == (
        "article",
        ARTICLE["url"],
        ARTICLE["image_url"],
        "api",
    )
    assert notice.published_at == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def test_a_webinar_with_its_times_is_stored(client, session, token):
    webinar = {
        "kind": "webinar",
        "title": "Ask the nurse",
        "url": "https://health.example/webinars/ask",
        "starts_at": "2026-12-01T17:00:00Z",
        "duration_minutes": 45,
        "time_zone": "Europe/Berlin",
        "join_url": "https://meet.example/ask",
    }
    response = client.post("/api/v1/notices", json=webinar, headers=_bearer(token))

    assert response.status_code == 201, response.get_json()
    notice = session.get_one(Notice, response.get_json()["id"])
    assert notice.starts_at == datetime(2026, 12, 1, 17, tzinfo=UTC)
    assert (notice.duration_minutes, notice.time_zone) == (45, "Europe/Berlin")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token-we-issued"},
        {"Authorization": "Basic Y21zOnNlY3JldA=="},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "other-scheme", "empty"],
)
def test_without_a_valid_token_nothing_is_created(client, session, token, headers):
    response = client.post("/api/v1/notices", json=ARTICLE, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["detail"]
    assert _notices(session) == 0


def test_malformed_json_is_a_400_naming_the_problem(client, session, token):
    response = client.post(
        "/api/v1/notices",
        data=b'{"kind": "article", "title": ',
        headers={**_bearer(token), "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["detail"]
    assert _notices(session) == 0


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        ({"title": 5}, 400, "title: Input should be a valid string"),
        ({"duration_minutes": "45"}, 400, "duration_minutes: Input should be a valid integer"),
        ({"published_at": "yesterday"}, 400, "published_at: Input should be a valid datetime"),
        ({"published_at": "2026-03-02T09:30:00"}, 400, "published_at: Input should have timezone"),
        ({"kind": None}, 400, "kind: Input should be 'article', 'video' or 'webinar'"),
        ({"headline": "x"}, 400, "headline: is not a known field"),
        ({"title": "a\x00b"}, 400, "title: String should match pattern"),
        # The right shape, but not a notice: a 422.
        ({"url": "javascript:alert(1)"}, 422, "url must be an http(s) URL"),
        ({"time_zone": "Mars/Olympus"}, 422, "is not an IANA zone"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(client, session, token, change, status, named):
    response = client.post("/api/v1/notices", json={**ARTICLE, **change}, headers=_bearer(token))

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == status and named in problem["detail"]
    if status == 400:
        assert problem["errors"][0]["pointer"] == f"/{next(iter(change))}"
    assert _notices(session) == 0


def test_a_webinar_without_starts_at_is_refused(client, session, token):
    webinar = {**ARTICLE, "kind": "webinar", "duration_minutes": 60}
    response = client.post("/api/v1/notices", json=webinar, headers=_bearer(token))

    assert response.status_code == 422
    assert "starts_at" in response.get_json()["detail"]
    assert _notices(session) == 0


def test_get_returns_the_stored_notice(client, token):
    created = client.post("/api/v1/notices", json=ARTICLE, headers=_bearer(token))

    response = client.get(created.headers["Location"], headers=_bearer(token))

    assert response.status_code == 200
    assert response.get_json() == created.get_json()
    missing = client.get("/api/v1/notices/2147483647", headers=_bearer(token))
    assert missing.status_code == 404
    assert "2147483647" in missing.get_json()["detail"]
    assert client.get(created.headers["Location"]).status_code == 401


def test_a_cli_token_works_and_only_its_hash_is_kept(app: Flask, client, session):
    result = CliRunner().invoke(
        main, ["api-token", "create", "cms"], obj=ScriptInfo(create_app=lambda: app)
    )

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert len(token) >= 40
    row = session.scalars(select(ApiToken)).one()
    assert row.name == "cms"
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.last_used_at is None

    response = client.post("/api/v1/notices", json=ARTICLE, headers=_bearer(token))

    assert response.status_code == 201
    session.expire_all()
    assert session.get_one(ApiToken, row.id).last_used_at is not None


def test_a_token_needs_a_name(app: Flask, session):
    result = CliRunner().invoke(
        main, ["api-token", "create", "  "], obj=ScriptInfo(create_app=lambda: app)
    )

    assert result.exit_code != 0
    assert "name is required" in result.output
    assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
