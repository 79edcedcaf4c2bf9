"""Test helpers: reading forms, posting signups as a person would, finding links in mail."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from email.message import EmailMessage

from flask import Flask
from flask.testing import FlaskClient

from mailer import antispam, clock

CONFIRM_LINK = re.compile(r"https?://\S+/confirm/\S+")
NOT_ME_LINK = re.compile(r"https?://\S+/not-me/\S+")
PREFERENCES_LINK = re.compile(r"https?://\S+/preferences/\S+")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html)
    if match is None:
        match = re.search(rf'id="{name}" name="{name}" type="hidden" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def aged_stamp(app: Flask, seconds: float = 10) -> str:
    """A form stamp as if the page was shown `seconds` ago: no sleeping in tests."""
    secret = app.extensions["mailer.settings"].secret_key
    return antispam.make_stamp(secret, now=clock.now() - timedelta(seconds=seconds))


def signup_fields(client: FlaskClient, path: str = "/") -> dict[str, str]:
    """GET the form and return its hidden fields (CSRF token, stamp)."""
    html = client.get(path).get_data(as_text=True)
    fields = {"stamp": hidden(html, "stamp"), "form": "embed" if "embed" in path else "page"}
    if 'name="csrf_token"' in html:
        fields["csrf_token"] = hidden(html, "csrf_token")
    return fields


def post_signup(
    client: FlaskClient,
    app: Flask,
    *,
    email: str,
    name: str = "",
    topics: tuple[str, ...] = ("article", "video", "webinar"),
    path: str = "/",
    ip: str = "127.0.0.1",
    **overrides: str,
):
    """Sign up as a reader who took ten seconds to fill the form in."""
    data = {
        **signup_fields(client, path),
        "stamp": aged_stamp(app),
        "name": name,
        "email": email,
        "topics": list(topics),
        "website": "",
        **overrides,
    }
    return client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": ip})


def text_part(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_part(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def link(pattern: re.Pattern[str], message: EmailMessage) -> str:
    match = pattern.search(text_part(message))
    assert match, f"no link matching {pattern.pattern} in the mail"
    return match.group(0)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def wait_until(predicate, *, timeout: float = 20.0, interval: float = 0.05):
    """Poll until `predicate()` is truthy and return it; fail the test after `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def add_confirmed(
    session,
    email: str,
    topics: tuple[str, ...] = ("article", "video", "webinar"),
    *,
    name: str = "",
    time_zone: str = "",
) -> int:
    """A confirmed subscriber straight into the database (the signup flow has its own tests)."""
    from mailer.models import Subscriber, SubscriberTopic

    now = clock.now()
    subscriber = Subscriber(
        email=email,
        name=name,
        status="confirmed",
        created_at=now,
        last_signup_at=now,
        confirmed_at=now,
        time_zone=time_zone,
        topics=[SubscriberTopic(topic=topic) for topic in topics],
    )
    session.add(subscriber)
    session.flush()
    return subscriber.id


def settings_env(settings) -> dict[str, str]:
    """The MAILER_* environment that makes a separate process build the same Settings."""
    import dataclasses
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    for field in dataclasses.fields(settings):
        name = "MAILER_" + ("FROM" if field.name == "sender" else field.name.upper())
        value = getattr(settings, field.name)
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def run_campaign(
    app: Flask, session, notice_ids: list[int], *, subject: str = "New this week"
) -> int:
    """Create and start a campaign, hand it to the running worker, wait until it is finished."""
    from mailer import campaigns
    from mailer.jobs import get_jobs
    from mailer.models import Campaign

    campaign_id = campaigns.create_campaign(
        session, subject=subject, notice_ids=notice_ids, now=clock.now()
    )
    campaigns.start_campaign(session, campaign_id, now=clock.now())
    session.commit()  # the worker must see the deliveries
    with app.app_context():
        get_jobs().start_sending(campaign_id)

    def finished():
        session.expire_all()
        return session.get(Campaign, campaign_id).status == "finished"

    wait_until(finished, timeout=60)
    return campaign_id
