"""Web edge: blueprints, extensions, security headers and error pages."""

from __future__ import annotations

from flask import Response, current_app, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_openapi3 import OpenAPI
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer import metrics, redact, time_zones
from mailer.sending.compose import topic_phrase
from mailer.web import (
    admin,
    api,
    embedding,
    health,
    metrics_page,
    public,
    reader,
    reader_address,  # noqa: F401  (its views join reader.bp)
    webhooks,
)
from mailer.web.api import problems, spec
from mailer.web.site_context import PageSite

EMBED_ENDPOINTS = {"public.embed", "public.embed_thanks", "public.subscribe"}
# Every form that makes us mail someone shares one per-IP budget (MAILER_SIGNUP_LIMIT):
# a client cannot triple it by taking turns between them.
MAILING_FORMS = ("public.subscribe", "reader.request_link", "reader.change_address")
# Pages that show what only their visitor may see: never kept by a browser or proxy.
NO_STORE_BLUEPRINTS = {"admin", "reader", "one_click"}
HSTS_SECONDS = 365 * 86400


def init_web(app: OpenAPI) -> None:
    """Register blueprints, CSRF, rate limits, proxy handling and headers on `app`."""
    settings = app.extensions["mailer.settings"]
    if settings.trusted_proxies:
        # Believe X-Forwarded-For only from as many hops as we run: with 0,
        # a client cannot spoof its address to dodge the per-IP limit.
        app.wsgi_app = ProxyFix(
            app.wsgi_app,
            x_for=settings.trusted_proxies,  # type: ignore[method-assign]
            x_proto=settings.trusted_proxies,
        )
    csrf = CSRFProtect(app)
    app.register_blueprint(public.bp)
    app.register_blueprint(reader.bp)
    app.register_blueprint(embedding.bp)
    app.register_blueprint(reader.one_click)
    csrf.exempt(reader.one_click)  # RFC 8058: the POST carries no cookie and no form token
    app.register_blueprint(health.bp)
    app.register_api(api.bp)
    csrf.exempt(api.bp)  # bearer-token API: no cookies, so no cross-site forgery
    app.register_blueprint(spec.bp)
    app.register_api(webhooks.bp)
    csrf.exempt(webhooks.bp)  # a shared secret, no cookies
    # The signup form checks its own CSRF token (the embedded form cannot carry one).
    csrf.exempt("mailer.web.public.subscribe")

    limiter = Limiter(get_remote_address, app=app, strategy="moving-window")
    app.extensions["mailer.limiter"] = limiter
    mailing_limit = limiter.shared_limit(
        settings.signup_limit, scope="mailing-forms", methods=["POST"]
    )
    for endpoint in MAILING_FORMS:
        app.view_functions[endpoint] = mailing_limit(app.view_functions[endpoint])
    admin.init_app(app, limiter)  # the console under /admin, its login and login limits
    metrics_page.init_app(app)  # /metrics and the time each request takes

    app.context_processor(lambda: {"site": PageSite(settings)})
    app.add_template_filter(topic_phrase)
    app.jinja_env.globals["theme_url"] = embedding.theme_url
    app.jinja_env.globals["zone_aliases"] = time_zones.aliases
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _error_page)


def _security_headers(response: Response) -> Response:
    settings = current_app.extensions["mailer.settings"]
    frame_ancestors = "'none'"
    if request.endpoint in embedding.CROSS_ORIGIN:
        embedding.cross_origin_headers(response)
    if request.endpoint in EMBED_ENDPOINTS:
        frame_ancestors = settings.embed_origins
    else:
        response.headers.setdefault("X-Frame-Options", "DENY")
    script = "'self'"
    if settings.captcha_provider == "turnstile":
        script += " https://challenges.cloudflare.com"
    elif settings.captcha_provider == "hcaptcha":
        script += " https://hcaptcha.com https://*.hcaptcha.com"
    # A view may set its own, stricter policy (the console's sandboxed mail previews).
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:; "
        f"frame-src {script}; form-action 'self'; base-uri 'none'; "
        f"frame-ancestors {frame_ancestors}",
    )
    # Token links must not leak to other sites through the Referer header.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.blueprint in NO_STORE_BLUEPRINTS or redact.TOKEN_PATH.search(request.path):
        # Console pages, a generated password, a reader's data: nothing for a shared
        # computer's cache or a proxy to keep and show the next person.
        response.headers["Cache-Control"] = "no-store"
    if settings.base_url.startswith("https://"):
        response.headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"
    return response


def _error_page(error: HTTPException) -> tuple[str, int] | Response:
    if error.code == 429 and request.endpoint == "public.subscribe":
        metrics.signup_refused("rate limit per client address")
    if request.path.startswith(("/api/", "/webhooks/")):
        # Routing errors (an unknown path, a method not allowed) come here, not to the
        # blueprint's handler: a program gets a problem, not a page.
        response = problems.problem(error.code or 500, error.description or error.name)
        if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response
    return render_template("web/error.html", error=error), error.code or 500
