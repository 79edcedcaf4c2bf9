"""The site settings as views and templates read them: once per request, through the cache."""

from __future__ import annotations

import logging

from flask import current_app, g
from sqlalchemy.exc import SQLAlchemyError

from mailer import db, site
from mailer.settings import Settings

log = logging.getLogger("mailer.web")


def site_settings() -> site.SiteSettings:
    """The site settings in force for this request (read once per request)."""
    if "mailer_site" not in g:
        settings = current_app.extensions["mailer.settings"]
        try:
            g.mailer_site = current_app.extensions[site.KEY].get(db.get_session())
        except SQLAlchemyError:  # an error page must render while the database is down
            db.get_session().rollback()
            log.exception("site settings unreadable; using the MAILER_* defaults")
            g.mailer_site = site.defaults(settings)
    return g.mailer_site


class PageSite:
    """What templates call `site`: the run-time site settings, then the MAILER_* settings.

    Names the two share (site_name, default_frequency) come from the site
    settings; the rest (captcha keys, the site's time zone) from Settings.
    Read lazily, so a page that shows no site value costs no query.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __getattr__(self, name: str) -> object:
        values = site_settings()
        if name in site.SiteSettings.__dataclass_fields__ or hasattr(type(values), name):
            return getattr(values, name)
        return getattr(self._settings, name)
