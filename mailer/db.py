"""Engine and sessions: one session per request or task, closed at teardown."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets the settings that let web, worker and beat share it."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets the web process read while the worker writes; foreign keys
        # are off by default in SQLite and the schema relies on them.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def init_app(app: Flask, url: str, info: dict[str, Any] | None = None) -> None:
    """Bind an engine and a sessionmaker to `app`, and close sessions at teardown.

    `info` lands in every session's `info` (the suppression keys, see mailer.suppression).
    """
    engine = make_engine(url)
    app.extensions["mailer.engine"] = engine
    app.extensions["mailer.sessionmaker"] = sessionmaker(
        engine, expire_on_commit=False, info=info or {}
    )
    app.teardown_appcontext(_close_session)


def sessions(app: Flask | None = None) -> sessionmaker[Session]:
    """The sessionmaker of `app`, or of the current app: for work that needs several
    transactions (a campaign batch, a feed poll)."""
    return (app or current_app).extensions["mailer.sessionmaker"]


def get_session() -> Session:
    """Return the session of the current app context, opening it on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["mailer.sessionmaker"]()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    # Closing without commit rolls back whatever the view or task left open.
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
