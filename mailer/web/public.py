"""Pages a reader sees: signup, the embeddable form, confirm, "this wasn't me"."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from werkzeug import Response

from mailer import antispam, clock, db, metrics, subscriptions, token_rows, tokens
from mailer.errors import CaptchaUnavailable, InvalidToken
from mailer.jobs import get_jobs
from mailer.models import Campaign
from mailer.sending import get_mailroom
from mailer.web.embedding import embed_query
from mailer.web.forms import (
    EmbedSignupForm,
    SignupForm,
    consent_wording,
)
from mailer.web.site_context import site_settings

bp = Blueprint("public", __name__)
log = logging.getLogger("mailer.web")
CAPTCHA_FIELDS = {"turnstile": "cf-turnstile-response", "hcaptcha": "h-captcha-response"}
# The web version of a campaign: its own inline styles and images, never a script (nothing
# but styles and images may load) or a form.
WEB_VIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
)


def _settings():
    return current_app.extensions["mailer.settings"]


def _render_form(template: str, form: SignupForm, status: int = 200, **extra: object):
    if not form.stamp.data:  # keep the first stamp across re-renders: it times the reader
        form.stamp.data = antispam.make_stamp(_settings().secret_keys, now=clock.now())
    if not form.source.data:
        # The page the form sits on, for the consent record: for the embedded
        # form that is the host page, which the iframe's request names as Referer.
        form.source.data = (request.referrer if template == "web/embed.html" else None) or (
            request.url
        )
    embedded = template.startswith("web/embed")
    return render_template(
        template,
        form=form,
        wording=consent_wording(),
        embedded_page=embedded,
        compact=embedded and _compact(),
        look=embed_query() if embedded else {},
        **extra,
    ), status


def _compact() -> bool:
    """The one-line variant: the address and a button, topics and frequency the site's defaults."""
    return request.values.get("compact", "") in {"1", "true", "yes"}


def _defaults() -> dict[str, object]:
    site = site_settings()
    return {"topics": list(site.default_topics), "frequency": site.default_frequency}


def _spam_verdict(form: SignupForm) -> antispam.Verdict:
    settings = _settings()
    verdict = antispam.check_form(
        settings.secret_keys,
        honeypot=form.website.data or "",
        stamp=form.stamp.data or "",
        now=clock.now(),
        min_seconds=settings.form_min_seconds,
        max_age=settings.form_max_age,
    )
    if not verdict.refused:
        verdict = antispam.check_domain(form.email.data, block_disposable=settings.block_disposable)
    if not verdict.refused and settings.captcha_provider != "none":
        verdict = antispam.verify_captcha(
            settings.captcha_provider,
            secret=settings.captcha_secret,
            response=request.form.get(CAPTCHA_FIELDS[settings.captcha_provider], ""),
            remote_ip=request.remote_addr or "",
            url=settings.captcha_verify_url,
        )
    return verdict


@bp.get("/")
def signup():
    return _render_form("web/signup.html", SignupForm(**_defaults()))


@bp.get("/embed")
def embed():
    return _render_form("web/embed.html", EmbedSignupForm(**_defaults()))


@bp.post("/subscribe")
def subscribe():
    """Both forms post here. Every outcome but a form error looks the same to the sender."""
    embedded = request.form.get("form") == "embed"
    form = EmbedSignupForm() if embedded else SignupForm()
    if not form.validate_on_submit():
        return _render_form("web/embed.html" if embedded else "web/signup.html", form, 400)
    try:
        verdict = _spam_verdict(form)
    except CaptchaUnavailable:
        log.exception("captcha service unavailable")
        return render_template("web/error.html", error=None, unavailable=True), 503
    if verdict.refused:
        log.info("signup refused", extra={"reason": verdict.reason, "ip": request.remote_addr})
        metrics.signup_refused(verdict.reason or "")
    else:
        session = db.get_session()
        outcome = subscriptions.sign_up(
            session,
            email=form.email.data,
            name=form.name.data or "",
            topics=form.topics.data,
            frequency=form.frequency.data or site_settings().default_frequency,
            request=subscriptions.SignupRequest(
                ip=request.remote_addr or "",
                user_agent=request.user_agent.string,
                form="embed" if embedded else "page",
                source_url=form.source.data or request.referrer or "",
                wording=consent_wording(),
            ),
            now=clock.now(),
        )
        session.commit()  # commit before enqueueing: the worker must find the row
        if outcome.mail_id is not None:
            get_jobs().send_mail(outcome.mail_id)
            metrics.signup_accepted("embed" if embedded else "page")
        else:
            log.info("signup mail held back", extra={"reason": outcome.held_back})
            metrics.signup_refused(outcome.held_back or "")
    if embedded:  # the thanks page keeps the host's look and the variant's size
        extra = {**embed_query(), **({"compact": "1"} if _compact() else {})}
        return redirect(url_for("public.embed_thanks", **extra))
    return redirect(url_for("public.check_inbox"))


@bp.get("/check-inbox")
def check_inbox():
    return render_template("web/check_inbox.html")


@bp.get("/embed/thanks")
def embed_thanks():
    return render_template(
        "web/embed_thanks.html", embedded_page=True, compact=_compact(), look=embed_query()
    )


@bp.get("/view/<token>")
def web_view(token: str) -> Response:
    """A sent campaign as a web page ("view in your browser" in the mail): nobody's data on it."""
    try:
        (campaign_id,) = tokens.read_compact(
            _settings().secret_keys, tokens.Purpose.WEB_VIEW, token, 1, bind=lambda _ids: ""
        )
    except InvalidToken:
        abort(404)
    session = db.get_session()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.started_at is None:
        abort(404)  # a draft, or cancelled before it was sent: nothing to show
    page = get_mailroom().web_view(session, campaign_id)
    if page is None:
        abort(404)
    response = make_response(page)
    response.headers["Content-Security-Policy"] = WEB_VIEW_CSP
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _consent_id(purpose: tokens.Purpose, token: str) -> int:
    return token_rows.consent(db.get_session(), _settings().secret_keys, purpose, token)


@bp.errorhandler(InvalidToken)
def invalid_token(_error: InvalidToken):
    """Forged, expired or used-up links: say so plainly and offer a fresh signup."""
    return _render_form("web/token_invalid.html", SignupForm(), 400)


@bp.get("/confirm/<token>")
def confirm_page(token: str):
    # Mail scanners fetch every GET link: showing this page confirms nothing.
    consent_id = _consent_id(tokens.Purpose.CONFIRM, token)
    topics = subscriptions.open_signup_topics(db.get_session(), consent_id)
    if topics is None:
        return render_template("web/confirmed.html", newly_confirmed=False)
    return render_template("web/confirm.html", form=FlaskForm(), topics=topics)


@bp.post("/confirm/<token>")
def confirm(token: str):
    consent_id = _consent_id(tokens.Purpose.CONFIRM, token)
    session = db.get_session()
    outcome = subscriptions.confirm(
        session,
        consent_id,
        ip=request.remote_addr or "",
        now=clock.now(),
        welcome=_settings().welcome_mail,
    )
    session.commit()
    if outcome.welcome_mail_id is not None:
        get_jobs().send_mail(outcome.welcome_mail_id)
    return render_template("web/confirmed.html", newly_confirmed=outcome.newly_confirmed)


@bp.get("/not-me/<token>")
def not_me_page(token: str):
    consent_id = _consent_id(tokens.Purpose.NOT_ME, token)
    if subscriptions.open_signup_topics(db.get_session(), consent_id) is None:
        return render_template("web/not_me.html", form=None, done=False)
    return render_template("web/not_me.html", form=FlaskForm(), done=None)


@bp.post("/not-me/<token>")
def not_me(token: str):
    consent_id = _consent_id(tokens.Purpose.NOT_ME, token)
    session = db.get_session()
    cancelled = subscriptions.cancel_signup(session, consent_id, now=clock.now())
    session.commit()
    return render_template("web/not_me.html", form=None, done=cancelled)
