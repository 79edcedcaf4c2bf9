"""Bad input gets a clear error and loses nothing: no row written, no mail queued."""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import func, select

from mailer.models import Consent, Subscriber, TransactionalMail
from tests.helpers import add_confirmed, aged_stamp, post_signup, signup_fields

INVALID_ADDRESSES = [
    "",
    "plainaddress",
    "@example.org",
    "ann@",
    "ann@@example.org",
    "ann@example",
    "ann@-example.org",
    "ann@example-.org",
    "ann@exa_mple.org",
    "ann@example..org",
    "ann..reader@example.org",
    ".ann@example.org",
    "ann.@example.org",
    "ann reader@example.org",
    "ann@exam ple.org",
    "ann@example.org>",
    "<ann@example.org>",
    "Ann <ann@example.org>",
    "ann@[127.0.0.1]",
    "ann@localhost",
    "ann(comment)@example.org",
    "ann@example.org\r\nBcc: victim@example.org",
    "ann@example.org\nBcc: victim@example.org",
    "ann,bob@example.org",
    "ann;bob@example.org",
    "ann@example.org,bob@example.org",
    "a" * 65 + "@example.org",
    "ann@" + "a" * 64 + ".org",
    "ann@" + ("label." * 50) + "org",
    "x" * 300 + "@example.org",
    "ann@.example.org",
    "ann@example.org.",
    "ann\x00@example.org",
    '"ann"@example.org\x7f',
    "ann@ex\u200bample.org",
    "ann@xn--.org",
]


def _counts(session):
    session.expire_all()
    return tuple(
        session.scalar(select(func.count()).select_from(table))
        for table in (Subscriber, Consent, TransactionalMail)
    )


@pytest.mark.parametrize("address", INVALID_ADDRESSES)
def test_invalid_address_is_refused_with_message(app, client, session, address):
    response = post_signup(client, app, email=address, name="Ann")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'class="field-error" id="email-error">[^<]+', html)
    assert 'value="Ann"' in html  # the reader's input is kept
    assert _counts(session) == (0, 0, 0)


def test_internationalised_address_is_accepted_and_normalised(app, client, session):
    assert post_signup(client, app, email="Jörg@Bücher.example").status_code == 302
    assert session.scalars(select(Subscriber.email)).one() == "jörg@bücher.example"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Ann\r\nBcc: victim@example.org", "may not contain line breaks"),
        ("Ann\x07", "may not contain line breaks"),
        ("x" * 10_000, "under 100 characters"),
        ("x" * 101, "under 100 characters"),
    ],
)
def test_bad_name_is_refused_with_message(app, client, session, name, message):
    response = post_signup(client, app, email="ann@example.org", name=name)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _counts(session) == (0, 0, 0)


def test_name_of_100_characters_is_fine(app, client, session):
    assert post_signup(client, app, email="ann@example.org", name="é" * 100).status_code == 302
    assert session.scalars(select(Subscriber.name)).one() == "é" * 100


def test_no_topic_chosen_is_refused(app, client, session):
    response = post_signup(client, app, email="ann@example.org", topics=())
    assert response.status_code == 400
    assert "choose at least one" in response.get_data(as_text=True)
    assert _counts(session) == (0, 0, 0)


def test_oversized_body_gets_413_page(app, client, session):
    fields = signup_fields(client)
    response = client.post(
        "/subscribe", data={**fields, "email": "ann@example.org", "name": "x" * (2 * 1024 * 1024)}
    )
    assert response.status_code == 413
    assert "too much data" in response.get_data(as_text=True)
    assert _counts(session) == (0, 0, 0)


@pytest.mark.parametrize("token", [None, "", "forged-token", "IjAwMCI.forged.signature"])
def test_missing_or_wrong_csrf_is_refused(app, client, session, token):
    data = {
        **signup_fields(client),
        "stamp": aged_stamp(app),
        "email": "ann@example.org",
        "topics": ["article"],
    }
    if token is None:
        data.pop("csrf_token")
    else:
        data["csrf_token"] = token
    response = client.post("/subscribe", data=data)
    assert response.status_code == 400
    assert "This form expired" in response.get_data(as_text=True)
    assert _counts(session) == (0, 0, 0)


def _neutral(response):
    return response.status_code == 302 and response.headers["Location"] == "/check-inbox"


def test_honeypot_gets_the_neutral_page_and_is_logged(app, client, session, caplog):
    caplog.set_level(logging.INFO, logger="mailer")
    response = post_signup(client, app, email="ann@example.org", website="http://spam.example")
    assert _neutral(response)
    assert _counts(session) == (0, 0, 0)
    assert any(getattr(r, "reason", "") == "honeypot filled" for r in caplog.records)


def test_too_fast_submission_gets_the_neutral_page(app, client, session, caplog):
    caplog.set_level(logging.INFO, logger="mailer")
    fields = signup_fields(client)  # a fresh stamp: submitted at once, as a bot does
    response = client.post(
        "/subscribe", data={**fields, "email": "ann@example.org", "topics": ["article"]}
    )
    assert _neutral(response)
    assert _counts(session) == (0, 0, 0)
    assert any("after the form was shown" in getattr(r, "reason", "") for r in caplog.records)


@pytest.mark.parametrize("stamp", ["", "forged", "MTIz.forged"])
def test_forged_or_missing_stamp_gets_the_neutral_page(app, client, session, stamp):
    response = post_signup(client, app, email="ann@example.org", stamp=stamp)
    assert _neutral(response)
    assert _counts(session) == (0, 0, 0)


def test_stale_form_gets_the_neutral_page(app, client, session):
    response = post_signup(
        client, app, email="ann@example.org", stamp=aged_stamp(app, seconds=2 * 86400)
    )
    assert _neutral(response)
    assert _counts(session) == (0, 0, 0)


def test_disposable_domain_is_dropped_when_blocked(make_app, session):
    app = make_app(block_disposable=True)
    client = app.test_client()
    assert _neutral(post_signup(client, app, email="ann@mailinator.com"))
    assert _counts(session) == (0, 0, 0)
    assert _neutral(post_signup(client, app, email="ann@example.org"))
    assert _counts(session) == (1, 1, 1)


def test_spoofed_forwarded_for_does_not_dodge_the_ip_limit(make_app, session):
    # No proxy is trusted by default, so X-Forwarded-For is just a string.
    app = make_app(signup_limit="3/hour")
    client = app.test_client()
    statuses = []
    for number in range(5):
        response = post_signup(
            client,
            app,
            email=f"reader{number}@example.org",
            ip="192.0.2.10",
        )
        statuses.append(response.status_code)
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"10.0.0.{number}"
    assert statuses == [302, 302, 302, 429, 429]
    assert "Too many signups" in response.get_data(as_text=True)
    assert _counts(session)[0] == 3


def test_trusted_proxy_header_is_used_when_configured(make_app, session):
    app = make_app(signup_limit="1/hour", trusted_proxies=1)
    client = app.test_client()
    first = post_signup(client, app, email="a@example.org", HTTP_X_FORWARDED_FOR="x")
    assert first.status_code == 302
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.1"
    assert post_signup(client, app, email="b@example.org").status_code == 302
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.2"
    assert post_signup(client, app, email="c@example.org").status_code == 302
    assert post_signup(client, app, email="d@example.org").status_code == 429
    consents = session.scalars(select(Consent.ip).order_by(Consent.id)).all()
    assert consents[1:] == ["198.51.100.1", "198.51.100.2"]


@pytest.mark.parametrize("path", ["/confirm/", "/not-me/", "/preferences/"])
@pytest.mark.parametrize("token", ["forged", "MQ.aaaa.bbbb", "MQ.awXVag.PGpjGog5QQ"])
def test_forged_tokens_get_a_clear_page(client, session, path, token):
    response = client.get(path + token)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "This link is not valid" in html
    assert 'action="/subscribe"' in html  # a way to ask for a new mail


READER_ENDPOINTS = [
    ("GET", "/preferences/{}"),
    ("POST", "/preferences/{}"),
    ("POST", "/preferences/{}/address"),
    ("GET", "/preferences/{}/data.json"),
    ("GET", "/change-address/{}"),
    ("POST", "/change-address/{}"),
    ("GET", "/u/{}"),
]


@pytest.mark.parametrize(("method", "path"), READER_ENDPOINTS)
def test_every_reader_endpoint_refuses_forged_and_other_purpose_tokens(
    app, client, session, method, path
):
    from mailer import tokens

    secret = app.extensions["mailer.settings"].secret_key
    subscriber = add_confirmed(session, "ann@example.org", ("article",), name="Ann")
    session.commit()
    key = session.get_one(Subscriber, subscriber).token_key
    wrong_purpose = tokens.make(secret, tokens.Purpose.CONFIRM, subscriber, bind=key)
    good = tokens.make(secret, tokens.Purpose.PREFERENCES, subscriber, bind=key)
    csrf = signup_fields(client)["csrf_token"]  # a valid session token: the link is what fails
    # A character inside the signature, changed (the last one may only carry padding bits).
    forged = good[:-5] + ("B" if good[-5] == "A" else "A") + good[-4:]
    for token in ("forged", good[:-6], forged, wrong_purpose, "1-0-aaaaaaaaaaaaaaaa"):
        response = client.open(
            path.format(token),
            method=method,
            data={
                "csrf_token": csrf,
                "address-csrf_token": csrf,
                "topics": ["video"],
                "address-email": "x@example.org",
                "name": "Eve",
            },
        )
        assert response.status_code == 400, (token, response.status_code)
        assert "This link is not valid" in response.get_data(as_text=True)
    session.expire_all()
    ann = session.get(Subscriber, subscriber)
    assert (ann.email, ann.name, ann.topic_names, ann.status) == (
        "ann@example.org",
        "Ann",
        ["article"],
        "confirmed",
    )
    assert session.scalars(select(TransactionalMail)).all() == []


def test_token_for_another_purpose_is_refused(app, client):
    from mailer import tokens

    secret = app.extensions["mailer.settings"].secret_key
    preferences_token = tokens.make(secret, tokens.Purpose.PREFERENCES, 1, bind="")
    assert client.get(f"/confirm/{preferences_token}").status_code == 400


def test_expired_confirm_link_offers_a_new_mail(app, client, session, monkeypatch):
    from mailer import tokens

    assert post_signup(client, app, email="ann@example.org").status_code == 302
    consent_id, key = session.execute(select(Consent.id, Consent.token_key)).one()
    secret = app.extensions["mailer.settings"].secret_key
    token = tokens.make(secret, tokens.Purpose.CONFIRM, consent_id, bind=key)
    monkeypatch.setitem(tokens.MAX_AGE, tokens.Purpose.CONFIRM, -1)  # as if 7 days had passed
    response = client.get(f"/confirm/{token}")
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert session.scalars(select(Subscriber.status)).one() == "pending"
