"""The admin console under /admin: one blueprint, every page behind a login.

Page modules add their views to `bp`; auth.py holds the login and the
decorators (`login_required` for any account, `admin_required` for admins).
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask_limiter import Limiter
from werkzeug.exceptions import HTTPException

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.errorhandler(HTTPException)
def _error_page(error: HTTPException) -> tuple[str, int]:
    # Inside the console an error keeps the console's navigation.
    return render_template("web/admin/error.html", error=error), error.code or 500


def init_app(app: Flask, limiter: Limiter) -> None:
    """Register the console, its login manager and the login rate limits on `app`."""
    app.register_blueprint(bp)
    app.add_template_filter(common.local_time, "local_time")
    app.jinja_env.globals["outbox_enabled"] = common.outbox_directory
    app.jinja_env.globals["failing_webhooks"] = common.failing_webhooks
    auth.init_login(app, limiter)


# The page modules register their views on `bp` when imported.
from mailer.web.admin import (  # noqa: E402, F401
    account_pages,
    auth,
    bounce_pages,
    campaign_edit_pages,
    campaign_pages,
    common,
    dashboard,
    integration_pages,
    notice_pages,
    outbox_pages,
    security_pages,
    site_pages,
    subscriber_action_pages,
    subscribers,
)
