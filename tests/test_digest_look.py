"""What a reader sees of a digest: pictures with alt text, greetings, footer, web version."""

from __future__ import annotations

import re

from flask import Flask

from mailer import campaigns, clock
from mailer.models import Notice
from mailer.sending import get_mailroom
from mailer.sending.links import LinkMaker
from tests.conftest import running_worker
from tests.helpers import add_confirmed, html_part, run_campaign, text_part


def _notice(session, kind: str = "article", **extra: object) -> int:
    now = clock.now()
    values = {
        "kind": kind,
        "title": "Naltrexone for Fibromyalgia",
        "url": "https://site.example/n",
        "source": "admin",
        "published_at": now,
        "created_at": now,
        **extra,
    }
    if kind == "webinar":
        values.update(starts_at=now.replace(year=now.year + 1), duration_minutes=45)
    notice = Notice(**values)
    session.add(notice)
    session.flush()
    return notice.id


def _sample(app: Flask, session, notice_ids: list[int], intro: str = "") -> tuple[str, str]:
    campaign_id = campaigns.create_campaign(
        session, subject="New this week", notice_ids=notice_ids, intro=intro, now=clock.now()
    )
    session.commit()
    outgoing = get_mailroom(app).sample(session, campaign_id, to="me@example.org", now=clock.now())
    assert outgoing is not None
    return text_part(outgoing.message), html_part(outgoing.message)


def test_every_kind_shows_its_picture_with_alt_text_at_a_fixed_width(app: Flask, session) -> None:
    described = _notice(
        session, image_url="https://site.example/a.jpg", image_alt="A pill box on a table"
    )
    undescribed = _notice(
        session, "webinar", title="Sleep and pain", image_url="https://site.example/w.jpg"
    )
    _text, html = _sample(app, session, [described, undescribed])
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 2
    assert 'alt="A pill box on a table"' in images[0]
    assert 'alt="Sleep and pain"' in images[1]  # no description: the title stands in
    for image in images:  # a fixed width, so clients lay the mail out before images load
        assert 'width="512"' in image


def test_an_intro_that_greets_gets_no_hello_above_it(app: Flask, session) -> None:
    notice = _notice(session)
    text, html = _sample(app, session, [notice], intro="Hi everyone, three new pieces this week.")
    assert "Hello" not in text and "Hello" not in html
    assert text.lstrip().startswith("Hi everyone")
    text, _html = _sample(app, session, [notice], intro="Three new pieces this week.")
    assert text.startswith("Hello,")


def test_the_footer_names_the_site_once(app: Flask, session) -> None:
    text, html = _sample(app, session, [_notice(session)])
    assert "Health Notices notices" not in text and "Health Notices notices" not in html
    words = " ".join(text.split())
    assert "subscribed to notices of new articles, videos and webinars from Health Notices" in words


def test_the_web_version_shows_the_sent_campaign_and_nobody_s_data(
    app: Flask, session, inbox
) -> None:
    add_confirmed(session, "ann@example.org", ("article",), name="Ann Quillfeather")
    notice = _notice(session)
    with running_worker(app):
        campaign_id = run_campaign(app, session, [notice])
    [received] = inbox.wait_for("ann@example.org")
    html = html_part(received.message)
    [view_url] = re.findall(r'href="(http://mailer\.test/view/[^"]+)"', html)
    assert "View this email in your browser" in html
    assert view_url in text_part(received.message)

    page = app.test_client().get(view_url.removeprefix("http://mailer.test"))
    assert page.status_code == 200
    assert "Naltrexone for Fibromyalgia" in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy  # no script at all
    for personal in ("ann@example.org", "Quillfeather", "/u/", "/preferences/"):
        assert personal not in page.text
    assert "http://mailer.test/preferences" in page.text  # "email me a link", for anyone

    settings = app.extensions["mailer.settings"]
    links = LinkMaker(settings.base_url, settings.secret_keys)
    assert links.view_url(campaign_id) == view_url
    client = app.test_client()
    forged = view_url[:-3] + ("aaa" if not view_url.endswith("aaa") else "bbb")
    assert client.get(forged.removeprefix("http://mailer.test")).status_code == 404
    draft = campaigns.create_campaign(
        session, subject="Not yet", notice_ids=[notice], now=clock.now()
    )
    session.commit()
    draft_url = links.view_url(draft).removeprefix("http://mailer.test")
    assert client.get(draft_url).status_code == 404  # never sent: nothing to show
