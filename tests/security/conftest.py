"""The attack tests: every one on PostgreSQL and on SQLite (the embedded default)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailer.settings import Settings


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "pg_url" if request.param == "postgresql" else "sqlite_url"
    return request.getfixturevalue(name)


@pytest.fixture
def make_settings(
    make_settings: Callable[..., Settings], database_url: str
) -> Callable[..., Settings]:
    """The suite's settings, on the database of this run of the test."""

    def build(**overrides: object) -> Settings:
        return make_settings(**{"database_url": database_url, **overrides})

    return build


@pytest.fixture
def dialect(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"
