"""The console in headless Chromium: log in, write a notice, compose, preview, test, start a
campaign against a real worker and relay, and watch it reach 100% without reloading.

Screenshots of the dashboard, compose, preview and progress pages land in tests/artifacts/.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from mailer.models import AuditEntry
from tests.admin_helpers import PASSWORD, make_account
from tests.conftest import running_worker
from tests.helpers import add_confirmed, free_port, wait_until
from tests.smtp_sink import Inbox
from tests.test_admin_outbox import outbox_app
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, screenshot

ARTICLE_READERS, VIDEO_READERS = 30, 5


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _page(browser: Browser, **options: object) -> Iterator[Page]:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from _page(browser, viewport=DESKTOP)


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    yield from _page(browser, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)


@contextmanager
def serve(app: Flask, port: int) -> Iterator[str]:
    """`app` behind a real threaded HTTP server; yields its URL."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def log_in(page: Page, url: str, email: str = "boss@example.com") -> None:
    page.goto(f"{url}/admin/")
    expect(page.get_by_role("heading", name="Log in to the console")).to_be_visible()
    assert "/admin/login?next=" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name=name).click()


def no_sideways_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], page.url


def test_compose_preview_and_send_a_campaign_in_the_browser(
    make_app: Callable[..., Flask], page: Page, inbox: Inbox
) -> None:
    port = free_port()
    # A slow send rate, so that the bar is seen moving before it reaches 100%.
    app = make_app(base_url=f"http://127.0.0.1:{port}", send_rate=10)
    make_account(app)
    with app.extensions["mailer.sessionmaker"]() as session:
        for number in range(ARTICLE_READERS):
            add_confirmed(session, f"reader{number}@example.org", ("article", "video"))
        for number in range(VIDEO_READERS):
            add_confirmed(session, f"viewer{number}@example.org", ("video",))
        session.commit()
    page.on("dialog", lambda dialog: Dialog.accept(dialog))  # "Send … now?": yes

    with serve(app, port) as url:
        log_in(page, url)

        nav(page, "Notices")
        page.get_by_role("link", name="New notice").click()
        page.get_by_label("Title").fill("Naltrexone for Fibromyalgia")
        page.get_by_label("Link to the page").fill("https://site.example/naltrexone")
        page.get_by_label("Summary").fill("What the trials say.")
        page.get_by_role("button", name="Save notice").click()
        expect(page.get_by_role("status")).to_have_text("Notice 1 saved.")

        nav(page, "Campaigns")
        page.get_by_role("link", name="Compose a campaign").click()
        count = page.locator("#audience-count")
        expect(count).to_have_text("0")  # no notice ticked: nobody would get anything
        page.get_by_label("Subject").fill("New this week")
        page.get_by_label("Introduction").fill("Three minutes of reading for you.")
        page.get_by_label("Naltrexone for Fibromyalgia").check()
        expect(count).to_have_text(str(ARTICLE_READERS))  # video-only readers get nothing
        page.get_by_label("Articles").uncheck()
        expect(count).to_have_text("0")
        page.get_by_label("Articles").check()
        expect(count).to_have_text(str(ARTICLE_READERS))
        screenshot(page, "admin-compose")
        page.get_by_role("button", name="Save campaign").click()
        expect(page.get_by_role("heading", name="New this week", level=1)).to_be_visible()

        page.get_by_role("link", name="Preview: HTML, phone width, text").click()
        html = page.frame_locator("iframe[title='The campaign as HTML']")
        expect(html.get_by_role("link", name="Naltrexone for Fibromyalgia")).to_be_visible()
        phone = page.locator("iframe[title='The campaign at phone width']")
        assert phone.bounding_box()["width"] <= 377  # type: ignore[index]  (375 + border)
        expect(
            page.frame_locator("iframe[title='The campaign at phone width']").get_by_text(
                "Three minutes of reading for you."
            )
        ).to_be_visible()
        expect(page.locator("pre.mail-text")).to_contain_text("Naltrexone for Fibromyalgia")
        screenshot(page, "admin-preview")
        page.get_by_role("link", name="Back to the campaign").click()

        with running_worker(app):
            page.get_by_label("Your address").fill("me@example.org")
            page.get_by_role("button", name="Send test").click()
            expect(page.get_by_role("status")).to_contain_text("Test on its way to me@example.org")
            [test] = inbox.wait_for("me@example.org")
            assert test.message["Subject"] == "[Test] New this week"
            wait_until(lambda: "campaign.test" in _actions(app))  # the worker audits the answer

            page.get_by_role("button", name="Start sending now").click()
            expect(page.get_by_role("status")).to_have_text(
                f"Sending to {ARTICLE_READERS} recipients."
            )
            page.evaluate("window.stillThisPage = true")  # gone if the page reloads
            bar = page.locator("#progress-bar")
            expect(page.locator("#count-sent")).not_to_have_text("0", timeout=30_000)
            percent = page.locator("#progress-percent")
            expect(percent).to_have_text("100%", timeout=60_000)
            assert bar.evaluate("bar => bar.value") == 100
            expect(page.locator("#count-sent")).to_have_text(str(ARTICLE_READERS))
            expect(page.locator("#count-failed")).to_have_text("0")
            expect(page.locator("#count-pending")).to_have_text("0")
            expect(page.locator("#campaign-status .badge")).to_have_text("finished")
            assert page.evaluate("window.stillThisPage") is True
            screenshot(page, "admin-progress")
        assert len(inbox.messages) == ARTICLE_READERS + 1
        assert inbox.to("viewer0@example.org") == []

        nav(page, "Dashboard")
        row = page.get_by_role("row", name="New this week")
        expect(row).to_contain_text("finished")
        expect(row.get_by_role("cell").nth(3)).to_have_text(str(ARTICLE_READERS))
        expect(page.locator("#count-confirmed")).to_have_text(str(ARTICLE_READERS + VIDEO_READERS))
        expect(page.locator("svg.chart")).to_be_visible()
        screenshot(page, "admin-dashboard")

    assert _actions(app) == [
        "login",
        "notice.create",
        "campaign.create",
        "campaign.test",
        "campaign.start",
    ]


def _actions(app: Flask) -> list[str]:
    with app.extensions["mailer.sessionmaker"]() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_roles_wrong_password_and_phone_width_in_the_browser(
    make_app: Callable[..., Flask], page: Page, phone_page: Page
) -> None:
    port = free_port()
    app = make_app(base_url=f"http://127.0.0.1:{port}")
    make_account(app, "ed@example.com", "editor")
    with serve(app, port) as url:
        page.goto(f"{url}/admin/campaigns")
        page.get_by_label("Email").fill("ed@example.com")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text(
            "That email address and password do not match an active account."
        )
        assert page.context.cookies() == [] or all(
            cookie["name"] != "session" or "_user_id" not in cookie["value"]
            for cookie in page.context.cookies()
        )
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Campaigns", level=1)).to_be_visible()
        nav = page.get_by_role("navigation", name="Console")
        expect(nav.get_by_role("link", name="Accounts")).to_have_count(0)
        answer = page.goto(f"{url}/admin/accounts")
        assert answer is not None and answer.status == 403
        expect(page.get_by_role("heading", name="403 Forbidden")).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("status")).to_have_text("You are logged out.")
        page.goto(f"{url}/admin/notices")
        expect(page.get_by_role("heading", name="Log in to the console")).to_be_visible()

        log_in(phone_page, url, "ed@example.com")
        no_sideways_scroll(phone_page)
        screenshot(phone_page, "admin-dashboard-phone")
        phone_page.goto(f"{url}/admin/campaigns/new")
        expect(phone_page.get_by_label("Subject")).to_be_visible()
        no_sideways_scroll(phone_page)
        screenshot(phone_page, "admin-compose-phone")


def test_the_outbox_in_the_browser_shows_the_mail_and_runs_no_script(
    make_app: Callable[..., Flask], page: Page, tmp_path: Path
) -> None:
    port = free_port()
    app = outbox_app(lambda **kw: make_app(base_url=f"http://127.0.0.1:{port}", **kw), tmp_path)
    make_account(app)
    with serve(app, port) as url:
        log_in(page, url)
        nav(page, "Outbox")
        page.get_by_role("link", name="Your notices").click()
        expect(page.get_by_role("heading", name="Your notices", level=1)).to_be_visible()
        frame = page.frame_locator("iframe[title='The mail as HTML']")
        expect(frame.get_by_text("reader")).to_be_visible()
        expect(frame.locator("#ran")).to_have_count(0)  # the mail's script did not run
        expect(page.locator("pre.mail-text").last).to_have_text("Hello reader, in plain text.")
        screenshot(page, "admin-outbox-mail")
