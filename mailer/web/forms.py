"""Flask-WTF forms. Validation that needs settings reads them from the current app."""

from __future__ import annotations

import unicodedata

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from mailer import addresses
from mailer.errors import InvalidAddress
from mailer.models import Topic
from mailer.web.site_context import site_settings

TOPIC_LABELS = {Topic.ARTICLE: "Articles", Topic.VIDEO: "Videos", Topic.WEBINAR: "Webinars"}
TOPIC_CHOICES = [SelectChoice(topic.value, label) for topic, label in TOPIC_LABELS.items()]

FREQUENCY_CHOICES = [
    SelectChoice("published", "As soon as something is published"),
    SelectChoice("weekly", "One weekly digest"),
]


def frequency_choices() -> list[SelectChoice]:
    """The two choices, the weekly one naming its day and hour (MAILER_DIGEST_*)."""
    settings = current_app.extensions["mailer.settings"]
    day = settings.digest_weekday.capitalize()
    return [
        FREQUENCY_CHOICES[0],
        SelectChoice(
            "weekly", f"One weekly digest, on {day}s at {settings.digest_hour:02d}:00 your time"
        ),
    ]


# Stored word for word with each consent record (GDPR Art. 7(1): show what they were told).
CONSENT_WORDING = (
    "Email me notices of new articles, videos and webinars from {site} on the topics I "
    "ticked. I can unsubscribe at any time with one click; my address is used for nothing else."
)


def consent_wording() -> str:
    """The consent sentence exactly as the form shows it."""
    return CONSENT_WORDING.format(site=site_settings().site_name)


def no_control_characters(_form: FlaskForm, field: StringField) -> None:
    # Line breaks and other controls in a name are how header injection starts.
    if any(unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"} for char in field.data or ""):
        raise ValidationError("Your name may not contain line breaks or control characters.")


def valid_address(_form: FlaskForm, field: StringField) -> None:
    settings = current_app.extensions["mailer.settings"]
    try:
        field.data = addresses.normalise(
            field.data or "",
            check_deliverability=settings.check_deliverability,
            timeout=settings.deliverability_timeout,
        )
    except InvalidAddress as error:
        raise ValidationError(str(error)) from None


def name_field() -> StringField:
    """The optional name, as the signup form and the preferences page take it."""
    return StringField(
        "Name",
        validators=[
            Length(max=100, message="Please keep your name under 100 characters."),
            no_control_characters,
        ],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
    )


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class SignupForm(FlaskForm):
    """The signup form of the site's own page, protected by Flask-WTF's CSRF token."""

    name = name_field()
    email = StringField(
        "Email",
        validators=[InputRequired("Please enter your email address."), valid_address],
    )
    topics = CheckboxesField(
        "Send me notices of new",
        choices=TOPIC_CHOICES,
        default=[choice.value for choice in TOPIC_CHOICES],
        validators=[InputRequired("Please choose at least one kind of notice.")],
    )
    # Optional: forms embedded before this field existed still post without it.
    frequency = RadioField(
        "How often", choices=FREQUENCY_CHOICES, default="published", validators=[Optional()]
    )
    # Honeypot: hidden from people by CSS and aria-hidden; bots fill every field.
    website = StringField("Leave this field empty")
    stamp = HiddenField()
    source = HiddenField()  # the page the form was shown on (consent record)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.frequency.choices = frequency_choices()


class EmbedSignupForm(SignupForm):
    """The same form for other sites' pages, in an iframe.

    Third-party iframes get no session cookie from browsers (SameSite), so a
    session-bound CSRF token cannot work there. The signed time-stamp is the
    form's server-issued token instead, and the per-IP and per-address limits
    apply as on the main form: a signup grants no authority worth forging.
    """

    class Meta:
        csrf = False
