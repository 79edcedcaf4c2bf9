"""The attack tests: every one on PostgreSQL and on SQLite (the embedded default).

The suite's conftest runs each test that reaches the database once per backend
(`backend`: "pg" or "sqlite"); `dialect` names it the way these tests do.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def dialect(backend: str) -> str:
    return "sqlite" if backend == "sqlite" else "postgresql"
