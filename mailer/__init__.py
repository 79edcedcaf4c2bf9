"""mailer: newsletter and notice service. `create_app` builds the app web, CLI and worker share.

It never imports `worker`: the worker imports mailer (worker.app), and the
web process queues tasks by name through mailer.jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask_openapi3 import OpenAPI

from mailer import db, logs, suppression
from mailer.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def create_app(settings: Settings | None = None) -> Flask:
    """Build a configured app. Tests pass their own Settings; processes read MAILER_*."""
    settings = settings or Settings.from_env()
    logs.configure(settings.log_format)
    from mailer.web.api.spec import app_options

    # flask-openapi3's Flask: it builds /api/openapi.json from the API's declared models.
    app = OpenAPI(__name__, template_folder=TEMPLATES, **app_options())
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SECRET_KEY_FALLBACKS=list(settings.secret_keys[1:]),  # rotation: old cookies still read
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        WTF_CSRF_TIME_LIMIT=settings.form_max_age,
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        SESSION_COOKIE_SAMESITE="Lax",
        RATELIMIT_STORAGE_URI=settings.limiter_storage,
        RATELIMIT_HEADERS_ENABLED=True,
        # Redis down: count in memory meanwhile rather than refuse every reader.
        # The per-address limit lives in the database and holds regardless.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    app.extensions["mailer.settings"] = settings
    db.init_app(app, settings.database_url, {suppression.INFO_KEY: suppression.keys_for(settings)})

    from mailer import events, jobs, site
    from mailer.sending import mailroom
    from mailer.web import init_web

    app.extensions[site.KEY] = site.SiteCache(settings)
    mailroom.init_app(app, settings, TEMPLATES, app.extensions[site.KEY])
    jobs.init_app(app, settings)
    events.init_app(app, _after_commit(app))
    init_web(app)
    return app


def _after_commit(app: Flask) -> Callable[[list, list[int]], None]:
    """What follows a commit that recorded events: count them, queue their webhooks."""
    from mailer import jobs, metrics

    def announce(recorded: list, delivery_ids: list[int]) -> None:
        for event in recorded:
            metrics.count_event(event.type, event.data)
        if delivery_ids:
            jobs.get_jobs(app).deliver_webhooks(delivery_ids)

    return announce
