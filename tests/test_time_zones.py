"""The time zone picker: the zones people live in, by region; old aliases find their entry."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Flask

from mailer import time_zones
from mailer.models import Subscriber
from mailer.sending.links import LinkMaker
from mailer.tokens import Purpose
from tests.admin_helpers import signed_in
from tests.helpers import add_confirmed, hidden


def test_the_picker_lists_canonical_zones_by_region_without_aliases() -> None:
    groups = dict(time_zones.grouped(datetime(2026, 12, 1, tzinfo=UTC)))
    names = {name for zones in groups.values() for name, _label in zones}
    assert {"Europe", "America", "Asia", "Africa", "Pacific", "UTC"} <= set(groups)
    assert {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"} <= names
    assert not {"US/Eastern", "GB", "Asia/Calcutta", "Etc/GMT+5", "localtime"} & names
    assert 380 < len(names) < 450  # zone.tab's places, not the 598 names of the database
    labels = dict(groups["Europe"])
    assert labels["Europe/Berlin"] == "Berlin, Germany (UTC+01:00)"
    assert dict(groups["America"])["America/Argentina/Buenos_Aires"].startswith(
        "Argentina / Buenos Aires, Argentina"
    )


def test_an_alias_finds_its_zone() -> None:
    assert time_zones.canonical("US/Eastern") == "America/New_York"
    assert time_zones.canonical("Asia/Calcutta") == "Asia/Kolkata"
    assert time_zones.canonical("GB") == "Europe/London"
    assert time_zones.canonical("Etc/UTC") == "UTC"
    assert time_zones.canonical("Mars/Olympus_Mons") == ""


def _preferences_path(app: Flask, subscriber_id: int) -> str:
    settings = app.extensions["mailer.settings"]
    with app.extensions["mailer.sessionmaker"]() as session:
        key = session.get_one(Subscriber, subscriber_id).token_key
    url = LinkMaker(settings.base_url, settings.secret_keys).url(
        "preferences", Purpose.PREFERENCES, subscriber_id, bind=key
    )
    return url.removeprefix(settings.base_url)


def test_the_preferences_page_groups_zones_and_keeps_a_stored_alias(app: Flask, session) -> None:
    subscriber_id = add_confirmed(session, "pat@example.org", time_zone="US/Eastern")
    session.commit()
    client = app.test_client()
    path = _preferences_path(app, subscriber_id)
    page = client.get(path).text
    assert page.count("<optgroup") >= 10 and "US/Eastern" not in page
    assert re.search(r'<option value="America/New_York" selected>New York, United States', page)
    assert "data-browser-zone" not in page  # a chosen zone is never replaced by the browser's
    # The weekly choice says when it comes.
    assert "One weekly digest, on Mondays at 08:00 your time" in page

    answer = client.post(
        path,
        data={
            "csrf_token": hidden(page, "csrf_token"),
            "topics": ["article"],
            "frequency": "weekly",
            "name": "Pat",
            "time_zone": "Asia/Calcutta",  # what some browsers still report
        },
    )
    assert answer.status_code == 200
    session.expire_all()
    assert session.get(Subscriber, subscriber_id).time_zone == "Asia/Kolkata"
    refused = client.post(
        path,
        data={
            "csrf_token": hidden(page, "csrf_token"),
            "topics": ["article"],
            "frequency": "weekly",
            "time_zone": "Mars/Olympus_Mons",
        },
    )
    assert refused.status_code == 400 and "Please pick a time zone from the list." in refused.text
    session.expire_all()
    assert session.get(Subscriber, subscriber_id).time_zone == "Asia/Kolkata"


def test_a_reader_without_a_zone_gets_the_browser_s_preselected(app: Flask, session) -> None:
    subscriber_id = add_confirmed(session, "new@example.org")
    session.commit()
    page = app.test_client().get(_preferences_path(app, subscriber_id)).text
    assert "data-browser-zone" in page and '"Asia/Calcutta": "Asia/Kolkata"' in page.replace(
        "&#34;", '"'
    )


def test_the_signup_form_names_the_digest_day_and_hour(make_app) -> None:
    app = make_app(digest_weekday="friday", digest_hour=17)
    page = app.test_client().get("/").text
    assert "One weekly digest, on Fridays at 17:00 your time" in page


def test_the_notice_form_uses_the_same_picker(app: Flask) -> None:
    client = signed_in(app, "editor", "ed@example.com")
    page = client.get("/admin/notices/new").text
    assert '<select id="time_zone" name="time_zone"' in page and page.count("<optgroup") >= 10
