"""The public pages in headless Chromium, served by a real HTTP server, with a real worker.

These tests do what a reader does: open the page, type, tick, press buttons,
open the link from the mail. Screenshots of every page land in tests/artifacts/
for a person to look at.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.serving import make_server

from mailer.models import Consent, Subscriber
from tests.conftest import running_worker
from tests.helpers import CONFIRM_LINK, free_port, link
from tests.smtp_sink import Inbox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FORM_MIN_SECONDS = 1.0
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Live:
    """The app and the address the browser reaches it at."""

    app: Flask
    url: str

    def subscriber(self, email: str) -> Subscriber | None:
        with self.app.extensions["mailer.sessionmaker"]() as session:
            return session.scalar(
                select(Subscriber)
                .where(Subscriber.email == email)
                .options(selectinload(Subscriber.topics))  # read after the session closes
            )

    def count(self, model: type) -> int:
        with self.app.extensions["mailer.sessionmaker"]() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(make_app: Callable[..., Flask]) -> Iterator[Live]:
    """The app behind a real threaded HTTP server; mail links point at it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_app(base_url=url, form_min_seconds=FORM_MIN_SECONDS)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    yield Live(app, url)
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def host_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Another site, on another port and host name, that embeds the form in an iframe."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="host-site", daemon=True)
    thread.start()
    # "localhost" rather than 127.0.0.1: the frame is then cross-site, as on a real blog.
    yield tmp_path, f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_like_a_person(shown_at: float) -> None:
    """Let the time trap's minimum pass since the form was shown: instant submits are dropped."""
    remaining = FORM_MIN_SECONDS + 0.3 - (time.monotonic() - shown_at)
    if remaining > 0:
        time.sleep(remaining)


def everything_in(message: EmailMessage) -> str:
    """Every header (decoded) and every body part (decoded), plus the raw message."""
    pieces = [f"{key}: {value}" for key, value in message.items()]
    for part in message.walk():
        if not part.is_multipart():
            pieces.append(str(part.get_content()))
    pieces.append(message.as_string())
    return "\n".join(pieces)


def test_double_opt_in_in_the_browser(live: Live, page: Page, inbox: Inbox) -> None:
    name, email = "Zebulon Quillfeather", "zebulon@example.com"
    with running_worker(live.app):
        page.goto(f"{live.url}/")
        shown_at = time.monotonic()
        expect(page.get_by_role("heading", level=1)).to_contain_text("FREE!")
        for topic in ("Articles", "Videos", "Webinars"):
            expect(page.get_by_label(topic)).to_be_checked()
        screenshot(page, "signup-desktop")

        page.get_by_label("Name").fill(name)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Webinars").uncheck()
        wait_like_a_person(shown_at)
        page.get_by_role("button", name="Subscribe").click()

        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        assert page.url == f"{live.url}/check-inbox"
        screenshot(page, "check-inbox")

        [confirmation] = inbox.wait_for(email)
        mail = confirmation.message
        assert mail["Subject"] == "Please confirm your subscription to Health Notices"
        # Nothing typed into the form reaches a stranger's inbox, not even a part of the name.
        content = everything_in(mail)
        for word in (name, "Zebulon", "Quillfeather"):
            assert word not in content
        confirm_url = link(CONFIRM_LINK, mail)
        assert confirm_url.startswith(f"{live.url}/confirm/")

        page.goto(confirm_url)
        button = page.get_by_role("button", name="Confirm my subscription")
        expect(button).to_be_visible()
        screenshot(page, "confirm")
        # Opening the link (as a mail scanner would) confirms nothing.
        pending = live.subscriber(email)
        assert pending is not None
        assert pending.status == "pending"
        assert pending.topic_names == []

        button.click()
        expect(page.get_by_role("heading", name="You're subscribed")).to_be_visible()
        screenshot(page, "confirmed")

        confirmed = live.subscriber(email)
        assert confirmed is not None
        assert confirmed.status == "confirmed"
        assert confirmed.topic_names == ["article", "video"]

        mails = inbox.wait_for(email, count=2)
        assert mails[1].message["Subject"] == "Welcome to Health Notices"


def test_form_errors_in_the_browser(live: Live, page: Page, phone_page: Page) -> None:
    for browser_page, suffix in ((page, "desktop"), (phone_page, "phone")):
        browser_page.goto(f"{live.url}/")
        browser_page.get_by_label("Name").fill("Zebulon Quillfeather")
        browser_page.get_by_label("Email").fill("not-an-email")
        with browser_page.expect_response(f"{live.url}/subscribe") as answer:
            browser_page.get_by_role("button", name="Subscribe").click()
        assert answer.value.status == 400

        email = browser_page.get_by_label("Email")
        error = browser_page.locator("#email-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("must have an @-sign")
        # Next to the field: in the same field box, and announced with it.
        expect(browser_page.locator(".field", has=email).locator(".field-error")).to_have_text(
            error.inner_text()
        )
        expect(email).to_have_attribute("aria-invalid", "true")
        expect(email).to_have_attribute("aria-describedby", "email-error")
        # What the reader typed is still there to correct.
        expect(browser_page.get_by_label("Name")).to_have_value("Zebulon Quillfeather")
        expect(email).to_have_value("not-an-email")
        for topic in ("Articles", "Videos", "Webinars"):
            expect(browser_page.get_by_label(topic)).to_be_checked()
        screenshot(browser_page, f"form-error-{suffix}")

    assert live.count(Subscriber) == 0


def test_embedded_form_in_another_sites_iframe(
    live: Live, page: Page, inbox: Inbox, host_site: tuple[Path, str]
) -> None:
    folder, host_url = host_site
    (folder / "blog.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>A blog</title></head>"
        "<body style='font-family: sans-serif; max-width: 40rem; margin: 2rem auto'>"
        "<h1>Someone's health blog</h1><p>Like what you read? Get our notices:</p>"
        f"<iframe src='{live.url}/embed' title='Newsletter signup' "
        "style='width: 100%; height: 620px; border: 0'></iframe>"
        "</body></html>",
        encoding="utf-8",
    )
    email = "embedded@example.com"
    with running_worker(live.app):
        page.goto(f"{host_url}/blog.html")
        shown_at = time.monotonic()
        frame = page.frame_locator("iframe[title='Newsletter signup']")
        expect(frame.get_by_role("button", name="Subscribe")).to_be_visible()
        screenshot(page, "embed-host-page")

        frame.get_by_label("Name").fill("Ann")
        frame.get_by_label("Email").fill(email)
        wait_like_a_person(shown_at)
        frame.get_by_role("button", name="Subscribe").click()

        expect(frame.get_by_role("heading", name="Check your inbox")).to_be_visible()
        # Only the frame moved on: the host page is still the blog.
        expect(page.get_by_role("heading", name="Someone's health blog")).to_be_visible()
        assert page.url == f"{host_url}/blog.html"
        screenshot(page, "embed-thanks")

        [confirmation] = inbox.wait_for(email)
        assert link(CONFIRM_LINK, confirmation.message).startswith(f"{live.url}/confirm/")

    with live.app.extensions["mailer.sessionmaker"]() as session:
        assert session.scalars(select(Consent.form)).all() == ["embed"]
        # The consent names the host page's site (browsers send only the origin cross-site).
        [source] = session.scalars(select(Consent.source_url)).all()
        assert source.startswith(host_url)


def test_pages_on_a_phone(live: Live, phone_page: Page) -> None:
    phone_page.goto(f"{live.url}/")
    expect(phone_page.get_by_role("button", name="Subscribe")).to_be_visible()
    # Nothing sticks out sideways: a phone reader never scrolls horizontally.
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone_page, "signup-phone")

    phone_page.goto(f"{live.url}/confirm/forged-token")
    expect(phone_page.get_by_role("heading", name="This link is not valid")).to_be_visible()
    expect(phone_page.get_by_role("button", name="Subscribe")).to_be_visible()
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone_page, "link-invalid-phone")

    phone_page.goto(f"{live.url}/no-such-page")
    expect(phone_page.get_by_role("heading", name="404 Not Found")).to_be_visible()
    screenshot(phone_page, "not-found-phone")


def test_preferences_and_unsubscribe_pages_on_a_phone(live: Live, phone_page: Page) -> None:
    from mailer.sending.links import LinkMaker
    from mailer.tokens import Purpose
    from tests.helpers import add_confirmed

    settings = live.app.extensions["mailer.settings"]
    links = LinkMaker(settings.base_url, settings.secret_keys, settings.sender_domain)
    with live.app.extensions["mailer.sessionmaker"]() as session:
        subscriber_id = add_confirmed(session, "pat@example.com", ("article",), name="Pat")
        session.commit()
        key = live.subscriber("pat@example.com").token_key  # type: ignore[union-attr]

    phone_page.goto(links.url("preferences", Purpose.PREFERENCES, subscriber_id, bind=key))
    expect(phone_page.get_by_role("heading", name="Your preferences")).to_be_visible()
    phone_page.get_by_label("Videos").check()
    phone_page.get_by_label("One weekly digest").check()
    phone_page.get_by_label("Time zone for webinar times").select_option("Europe/Paris")
    screenshot(phone_page, "preferences-phone")
    phone_page.get_by_role("button", name="Save preferences").click()
    expect(phone_page.get_by_role("status")).to_contain_text("Your preferences are saved")
    saved = live.subscriber("pat@example.com")
    assert saved is not None
    assert (saved.topic_names, saved.frequency, saved.time_zone) == (
        ["article", "video"],
        "weekly",
        "Europe/Paris",
    )

    phone_page.goto(links.unsubscribe_url(subscriber_id, None, key))
    expect(phone_page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
    screenshot(phone_page, "unsubscribe-phone")
    assert live.subscriber("pat@example.com").status == "confirmed"  # type: ignore[union-attr]
    phone_page.get_by_role("button", name="Unsubscribe from everything").click()
    expect(phone_page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    left = live.subscriber("pat@example.com")
    assert left is not None
    assert (left.status, left.unsubscribe_channel) == ("unsubscribed", "page")
