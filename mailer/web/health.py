"""GET /healthz: is the database reachable, is the broker reachable."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import text

from mailer import db
from mailer.jobs import get_jobs

bp = Blueprint("health", __name__)


def _database() -> str:
    try:
        db.get_session().execute(text("SELECT 1"))
    except Exception as error:  # any failure is the answer, not a crash
        return f"error: {type(error).__name__}"
    return "ok"


def _broker() -> str:
    try:
        with get_jobs().celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:  # any failure is the answer, not a crash
        return f"error: {type(error).__name__}"
    return "ok"


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    checks = {"database": _database(), "broker": _broker()}
    healthy = all(value == "ok" for value in checks.values())
    return {"status": "ok" if healthy else "failing", **checks}, 200 if healthy else 503
