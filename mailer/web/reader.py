"""A subscriber's own pages: one-click unsubscribe, preferences, new address, their data.

The one-click URL (RFC 8058) lives in its own blueprint without CSRF: the
POST comes from a mailbox provider with no cookie and no form token; the
unguessable token in the URL is the authority. Everything else here uses
CSRF like any form.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, render_template, request
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField, ValidationError
from wtforms.validators import InputRequired

from mailer import clock, db, preferences, privacy, subscriptions, time_zones, token_rows, tokens
from mailer.errors import InvalidToken
from mailer.jobs import get_jobs
from mailer.models import Subscriber, SubscriberStatus
from mailer.web.forms import (
    TOPIC_CHOICES,
    CheckboxesField,
    frequency_choices,
    name_field,
    valid_address,
)
from mailer.web.public import invalid_token

one_click = Blueprint("one_click", __name__)
bp = Blueprint("reader", __name__)
one_click.register_error_handler(InvalidToken, invalid_token)
bp.register_error_handler(InvalidToken, invalid_token)
log = logging.getLogger("mailer.web")


def keys() -> tuple[str, ...]:
    return current_app.extensions["mailer.settings"].secret_keys


@one_click.get("/u/<token>")
def unsubscribe_page(token: str):
    """The footer link: a page with one button. A GET never changes anything.

    Mailbox providers see this URL, and it never expires, so it opens nothing
    else: the way to the preferences is "email me a link", to the address itself.
    """
    try:
        subscriber_id, _campaign = token_rows.one_click(db.get_session(), keys(), token)
    except tokens.RowGone:  # erased since: there is nothing left to mail
        return render_template("web/unsubscribe.html", subscriber=None, done=True)
    subscriber = db.get_session().get_one(Subscriber, subscriber_id)
    return render_template(
        "web/unsubscribe.html",
        subscriber=subscriber,
        done=subscriber.status == SubscriberStatus.UNSUBSCRIBED,
    )


@one_click.post("/u/<token>")
def unsubscribe(token: str):
    """RFC 8058 one-click: unsubscribe at once, answer 200, never redirect; repeats are harmless."""
    session = db.get_session()
    try:
        subscriber_id, campaign_id = token_rows.one_click(session, keys(), token)
    except tokens.RowGone:  # erased since: there is nothing left to mail
        return render_template("web/unsubscribed.html"), 200
    except InvalidToken:
        return Response("This unsubscribe link is not valid.\n", 400, mimetype="text/plain")
    if request.form.get("List-Unsubscribe") != "One-Click":
        return Response(
            "Expected the body List-Unsubscribe=One-Click (RFC 8058).\n",
            400,
            mimetype="text/plain",
        )
    changed = subscriptions.unsubscribe(
        session,
        subscriber_id,
        now=clock.now(),
        channel="page" if request.form.get("from") == "page" else "one-click",
        campaign_id=campaign_id,
    )
    session.commit()
    log.info("unsubscribed", extra={"subscriber": subscriber_id, "changed": changed})
    return render_template("web/unsubscribed.html"), 200


def known_zone(_form: FlaskForm, field: StringField) -> None:
    if field.data and not time_zones.canonical(field.data):
        raise ValidationError("Please pick a time zone from the list.")


class PreferencesForm(FlaskForm):
    topics = CheckboxesField("Send me notices of new", choices=TOPIC_CHOICES)
    frequency = RadioField("How often")
    name = name_field()
    # The picker (web/_zone_picker.html): canonical zones by region; "" = the site's.
    time_zone = StringField("Time zone for webinar times", validators=[known_zone])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.frequency.choices = frequency_choices()


class AddressForm(FlaskForm):
    email = StringField(
        "New email address",
        validators=[InputRequired("Please enter the new address."), valid_address],
    )


class LinkRequestForm(FlaskForm):
    email = StringField(
        "Your email address",
        validators=[InputRequired("Please enter your email address."), valid_address],
    )


def _preferences_form(subscriber: Subscriber) -> PreferencesForm:
    return PreferencesForm(
        topics=subscriber.topic_names,
        frequency=subscriber.frequency,
        name=subscriber.name,
        # A zone stored under an old alias (US/Eastern) shows as its entry (New York).
        time_zone=time_zones.canonical(subscriber.time_zone),
    )


def render_preferences(token: str, subscriber: Subscriber, status: int = 200, **extra: object):
    context = {
        "form": _preferences_form(subscriber),
        "address_form": AddressForm(prefix="address"),
        "subscriber": subscriber,
        "token": token,
        "zone_groups": time_zones.grouped(clock.now()),
        "unsubscribe_token": tokens.make_compact(
            keys(), tokens.Purpose.UNSUBSCRIBE, subscriber.id, 0, bind=subscriber.token_key
        ),
        **extra,
    }
    return render_template("web/preferences.html", **context), status


def subscriber_of(token: str) -> Subscriber:
    """The subscriber a preferences link names, while it is young enough (InvalidToken)."""
    settings = current_app.extensions["mailer.settings"]
    session = db.get_session()
    subscriber_id = token_rows.preferences(
        session, keys(), token, max_age=settings.preferences_link_days * tokens.DAY
    )
    return session.get_one(Subscriber, subscriber_id)


@bp.get("/preferences/<token>")
def preferences_page(token: str):
    return render_preferences(token, subscriber_of(token))


@bp.post("/preferences/<token>")
def save_preferences(token: str):
    subscriber = subscriber_of(token)
    form = _preferences_form(subscriber)
    form.process(request.form)
    if not form.validate():
        return render_preferences(token, subscriber, 400, form=form, errors=form.errors)
    session = db.get_session()
    preferences.update(
        session,
        subscriber.id,
        preferences.Choices(
            topics=form.topics.data or [],
            frequency=form.frequency.data,
            name=form.name.data or "",
            time_zone=form.time_zone.data or "",
        ),
        now=clock.now(),
    )
    session.commit()
    return render_preferences(token, subscriber, saved=True)


@bp.get("/preferences/<token>/data.json")
def download_data(token: str):
    """The reader's own data, machine-readable (GDPR Art. 15 and 20)."""
    subscriber = subscriber_of(token)
    data = privacy.export_subscriber(db.get_session(), subscriber.id)
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-subscription.json"'},
    )


@bp.post("/preferences/<token>/forget-links")
def forget_links(token: str):
    """Revoke every link mailed so far (this one too): for a link that went astray."""
    subscriber = subscriber_of(token)
    if not FlaskForm().validate_on_submit():
        return render_preferences(token, subscriber, 400)
    session = db.get_session()
    preferences.forget_links(session, subscriber.id)
    session.commit()
    return render_template("web/links_forgotten.html")


@bp.route("/preferences", methods=["GET", "POST"])
def request_link():
    """ "Email me a link": the same answer whether or not the address subscribes."""
    form = LinkRequestForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("web/request_link.html", form=form, sent=False), status
    session = db.get_session()
    mail_id = preferences.request_link(session, form.email.data, now=clock.now())
    session.commit()
    if mail_id is not None:
        get_jobs().send_mail(mail_id)
    return render_template("web/request_link.html", form=None, sent=True)
