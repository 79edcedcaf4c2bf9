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
from wtforms import RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from mailer import clock, db, preferences, privacy, subscriptions, tokens
from mailer.errors import AddressChangeRefused, InvalidToken
from mailer.jobs import get_jobs
from mailer.models import Subscriber, SubscriberStatus
from mailer.web.forms import (
    FREQUENCY_CHOICES,
    TOPIC_CHOICES,
    CheckboxesField,
    name_field,
    valid_address,
)
from mailer.web.public import invalid_token, read_token

one_click = Blueprint("one_click", __name__)
bp = Blueprint("reader", __name__)
one_click.register_error_handler(InvalidToken, invalid_token)
bp.register_error_handler(InvalidToken, invalid_token)
log = logging.getLogger("mailer.web")


def _secret() -> str:
    return current_app.extensions["mailer.settings"].secret_key


def _one_click_ids(token: str) -> tuple[int, int | None]:
    subscriber_id, campaign_id = tokens.read_compact(
        _secret(), tokens.Purpose.UNSUBSCRIBE, token, 2
    )
    return subscriber_id, campaign_id or None


@one_click.get("/u/<token>")
def unsubscribe_page(token: str):
    """The footer link: a page with one button. A GET never changes anything."""
    subscriber_id, _campaign = _one_click_ids(token)
    subscriber = db.get_session().get(Subscriber, subscriber_id)
    preferences_token = tokens.make(_secret(), tokens.Purpose.PREFERENCES, subscriber_id)
    return render_template(
        "web/unsubscribe.html",
        subscriber=subscriber,
        done=subscriber is None or subscriber.status == SubscriberStatus.UNSUBSCRIBED,
        preferences_token=preferences_token,
    )


@one_click.post("/u/<token>")
def unsubscribe(token: str):
    """RFC 8058 one-click: unsubscribe at once, answer 200, never redirect; repeats are harmless."""
    try:
        subscriber_id, campaign_id = _one_click_ids(token)
    except InvalidToken:
        return Response("This unsubscribe link is not valid.\n", 400, mimetype="text/plain")
    if request.form.get("List-Unsubscribe") != "One-Click":
        return Response(
            "Expected the body List-Unsubscribe=One-Click (RFC 8058).\n",
            400,
            mimetype="text/plain",
        )
    session = db.get_session()
    try:
        changed = subscriptions.unsubscribe(
            session,
            subscriber_id,
            now=clock.now(),
            channel="page" if request.form.get("from") == "page" else "one-click",
            campaign_id=campaign_id,
        )
    except InvalidToken:  # erased since: there is nothing left to mail
        changed = False
    session.commit()
    log.info("unsubscribed", extra={"subscriber": subscriber_id, "changed": changed})
    return render_template("web/unsubscribed.html"), 200


class PreferencesForm(FlaskForm):
    topics = CheckboxesField("Send me notices of new", choices=TOPIC_CHOICES)
    frequency = RadioField("How often", choices=FREQUENCY_CHOICES)
    name = name_field()
    time_zone = SelectField("Time zone for webinar times", choices=[])


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
    form = PreferencesForm(
        topics=subscriber.topic_names,
        frequency=subscriber.frequency,
        name=subscriber.name,
        time_zone=subscriber.time_zone,
    )
    site_zone = current_app.extensions["mailer.settings"].site_time_zone
    form.time_zone.choices = [SelectChoice("", f"The site's ({site_zone})")] + [
        SelectChoice(zone, zone.replace("_", " ")) for zone in preferences.TIME_ZONES
    ]
    return form


def _page(token: str, subscriber: Subscriber, status: int = 200, **extra: object):
    context = {
        "form": _preferences_form(subscriber),
        "address_form": AddressForm(prefix="address"),
        "subscriber": subscriber,
        "token": token,
        "unsubscribe_token": tokens.make_compact(
            _secret(), tokens.Purpose.UNSUBSCRIBE, subscriber.id, 0
        ),
        **extra,
    }
    return render_template("web/preferences.html", **context), status


def _subscriber(token: str) -> Subscriber:
    subscriber = db.get_session().get(Subscriber, read_token(tokens.Purpose.PREFERENCES, token))
    if subscriber is None:
        raise InvalidToken("preferences")
    return subscriber


@bp.get("/preferences/<token>")
def preferences_page(token: str):
    return _page(token, _subscriber(token))


@bp.post("/preferences/<token>")
def save_preferences(token: str):
    subscriber = _subscriber(token)
    form = _preferences_form(subscriber)
    form.process(request.form)
    if not form.validate():
        return _page(token, subscriber, 400, form=form, errors=form.errors)
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
    return _page(token, subscriber, saved=True)


@bp.post("/preferences/<token>/address")
def change_address(token: str):
    subscriber = _subscriber(token)
    form = AddressForm(prefix="address")
    if not form.validate_on_submit():
        return _page(token, subscriber, 400, address_form=form)
    session = db.get_session()
    try:
        mail_id = preferences.request_address_change(
            session, subscriber.id, form.email.data, now=clock.now()
        )
    except AddressChangeRefused as error:
        form.email.errors = [str(error)]
        return _page(token, subscriber, 400, address_form=form)
    session.commit()
    if mail_id is not None:
        get_jobs().send_mail(mail_id)
    return _page(token, subscriber, address_sent=form.email.data)


@bp.get("/preferences/<token>/data.json")
def download_data(token: str):
    """The reader's own data, machine-readable (GDPR Art. 15 and 20)."""
    subscriber = _subscriber(token)
    data = privacy.export_subscriber(db.get_session(), subscriber.id)
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-subscription.json"'},
    )


def _address_change(token: str) -> tuple[int, str]:
    value = tokens.read_value(_secret(), tokens.Purpose.ADDRESS_CHANGE, token)
    if not (isinstance(value, list) and len(value) == 2):
        raise InvalidToken("address-change")
    subscriber_id, email = value
    if not isinstance(subscriber_id, int) or not isinstance(email, str):
        raise InvalidToken("address-change")
    return subscriber_id, email


@bp.route("/change-address/<token>", methods=["GET", "POST"])
def confirm_address(token: str):
    """GET shows a button (mail scanners fetch links); the POST moves the subscription."""
    subscriber_id, email = _address_change(token)
    form = FlaskForm()
    if request.method == "GET":
        return render_template("web/change_address.html", form=form, email=email, done=None)
    if not form.validate_on_submit():
        return render_template("web/change_address.html", form=form, email=email, done=None), 400
    session = db.get_session()
    try:
        preferences.confirm_address_change(session, subscriber_id, email, now=clock.now())
    except AddressChangeRefused as error:
        session.rollback()
        return render_template(
            "web/change_address.html", form=None, email=email, done=False, error=str(error)
        ), 409
    session.commit()
    return render_template("web/change_address.html", form=None, email=email, done=True)


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
