"""Issue 14 in Chromium, at desktop width and at 390 px: the embed on another site, every reader
page, the digest (light and dark) and every console page, each checked with axe-core (no
serious or critical violation). Screenshots land in tests/artifacts/; the README's three in
docs/screenshots/.
"""

from __future__ import annotations

import functools
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from mailer import campaigns, clock, tokens
from mailer.models import Consent, Notice, Subscriber
from mailer.sending.links import LinkMaker
from tests.admin_helpers import make_account
from tests.axe import assert_accessible
from tests.conftest import running_worker
from tests.helpers import add_confirmed, free_port, run_campaign
from tests.smtp_sink import Inbox
from tests.test_admin_browser import log_in, serve
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    _QuietHandler,
    screenshot,
    wait_like_a_person,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# The README's plain-iframe snippet: tall enough for the whole form at 300 px wide.
README_IFRAME_HEIGHT = 640
WIDTHS = (300, 320, 400)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _context_page(browser: Browser, **options: object) -> Iterator[Page]:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from _context_page(browser, viewport=DESKTOP)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    yield from _context_page(
        browser, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A second HTTP server, another origin (localhost, another port): the host site."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="other-site", daemon=True)
    thread.start()
    yield tmp_path, f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def live(make_app: Callable[..., Flask]) -> Iterator[tuple[Flask, str]]:
    port = free_port()
    app = make_app(base_url=f"http://127.0.0.1:{port}", form_min_seconds=1.0)
    with serve(app, port) as url:
        yield app, url


def _shot(page: Page, name: str, *, docs: bool = False) -> None:
    screenshot(page, name)
    if docs:
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def _png(width: int, height: int) -> bytes:
    """A small picture (a soft gradient) for the digest, written here: no file to ship."""
    rows = b"".join(
        b"\x00"
        + bytes(
            value
            for x in range(width)
            for value in (40 + x * 120 // width, 110 + y * 80 // height, 140)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _no_sideways_scroll(target: Page, width: int) -> None:
    assert target.evaluate("document.documentElement.scrollWidth") <= width, target.url


# --- the embed on another site --------------------------------------------------------


def _host_page(folder: Path, name: str, width: int, snippet: str) -> str:
    (folder / name).write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>A blog</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'></head>"
        "<body style='margin:0;font-family:Georgia,serif'><main style='display:flex;gap:16px'>"
        "<article style='flex:1;padding:16px'><h1>Someone's health blog</h1>"
        "<p>Like what you read? Get our notices.</p></article>"
        f"<aside style='width:{width}px;flex:none'>{snippet}</aside></main></body></html>",
        encoding="utf-8",
    )
    return name


def _frame_fits(page: Page) -> None:
    """The iframe is as tall as the form inside: nothing cut off, no inner scrollbar."""
    frame = page.locator("iframe[title='Newsletter signup']")
    inner = page.frame_locator("iframe[title='Newsletter signup']")
    expect(inner.locator("section.card")).to_be_visible()

    def fits() -> bool:
        height = frame.evaluate("f => f.getBoundingClientRect().height")
        content = frame.evaluate(
            "f => f.contentDocument ? 0 : -1"
        )  # cross-origin: no access, as on a real host page
        assert content == -1
        box = inner.locator("section.card").bounding_box()
        return box is not None and abs(height - (box["y"] + box["height"])) < 40

    deadline = time.monotonic() + 10
    while not fits():
        assert time.monotonic() < deadline, "the frame never took the form's height"
        page.wait_for_timeout(100)
    frame_box = frame.bounding_box()
    for button in inner.get_by_role("button").all():
        box = button.bounding_box()
        assert (
            box and frame_box and box["y"] + box["height"] <= frame_box["y"] + frame_box["height"]
        )


@pytest.mark.parametrize("width", WIDTHS)
def test_the_script_embed_fits_on_another_site_and_signs_up(
    live: tuple[Flask, str],
    browser: Browser,
    other_site: tuple[Path, str],
    inbox: Inbox,
    width: int,
) -> None:
    app, url = live
    folder, host = other_site
    snippet = (
        f"<script src='{url}/embed.js' data-accent='#9c2a4b' data-font='Georgia, serif'></script>"
    )
    name = _host_page(folder, f"blog-{width}.html", width, snippet)
    email = f"embed{width}@example.org"
    for target in _context_page(browser, viewport={"width": max(width + 40, 390), "height": 900}):
        with running_worker(app):
            target.goto(f"{host}/{name}")
            shown_at = time.monotonic()
            _frame_fits(target)
            frame = target.frame_locator("iframe[title='Newsletter signup']")
            button = frame.get_by_role("button", name="Subscribe")
            # The host's colour and font, through theme.css (the CSP allows no inline style).
            assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(156, 42, 75)"
            assert "Georgia" in button.evaluate("b => getComputedStyle(b).fontFamily")
            _shot(target, f"embed-script-{width}", docs=width == 320)
            frame.get_by_label("Email").fill(email)
            wait_like_a_person(shown_at)
            button.click()
            expect(frame.get_by_role("heading", name="Check your inbox")).to_be_visible()
            _frame_fits(target)  # the thanks page is shorter: the frame follows it
            _shot(target, f"embed-script-thanks-{width}")
            inbox.wait_for(email)
    with app.extensions["mailer.sessionmaker"]() as session:
        [source] = session.scalars(select(Consent.source_url)).all()
        assert source.startswith(host)


def test_the_plain_iframe_and_the_one_line_variant_fit_at_300_px(
    live: tuple[Flask, str], browser: Browser, other_site: tuple[Path, str], inbox: Inbox
) -> None:
    app, url = live
    folder, host = other_site
    plain = (
        f"<iframe src='{url}/embed' title='Newsletter signup' "
        f"style='width:100%;height:{README_IFRAME_HEIGHT}px;border:0'></iframe>"
    )
    compact = f"<script src='{url}/embed.js' data-compact></script>"
    _host_page(folder, "plain.html", 300, plain)
    _host_page(folder, "compact.html", 300, compact)
    for target in _context_page(browser, viewport={"width": 390, "height": 900}):
        target.goto(f"{host}/plain.html")
        frame = target.frame_locator("iframe[title='Newsletter signup']")
        button = frame.get_by_role("button", name="Subscribe")
        expect(button).to_be_visible()
        box, frame_box = button.bounding_box(), target.locator("iframe").bounding_box()
        assert (
            box and frame_box and box["y"] + box["height"] <= frame_box["y"] + frame_box["height"]
        )
        _shot(target, "embed-plain-300")

        with running_worker(app):
            target.goto(f"{host}/compact.html")
            shown_at = time.monotonic()
            _frame_fits(target)
            frame = target.frame_locator("iframe[title='Newsletter signup']")
            expect(frame.get_by_label("Name")).to_have_count(0)  # the address and a button
            assert target.locator("iframe").bounding_box()["height"] < 360  # type: ignore[index]
            _shot(target, "embed-compact-300")
            frame.get_by_label("Email").fill("compact@example.org")
            wait_like_a_person(shown_at)
            frame.get_by_role("button", name="Subscribe").click()
            expect(frame.get_by_role("heading", name="Check your inbox")).to_be_visible()
            inbox.wait_for("compact@example.org")
    with app.extensions["mailer.sessionmaker"]() as session:
        consent = session.scalars(select(Consent)).one()
        assert (consent.form, consent.topic_list) == ("embed", ["article", "video", "webinar"])


def test_embed_js_is_served_for_other_sites(live: tuple[Flask, str]) -> None:
    app, _url = live
    answer = app.test_client().get("/embed.js")
    assert answer.status_code == 200 and answer.mimetype == "text/javascript"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert "event.origin !== origin" in answer.text  # only our frame may size itself
    framed = app.test_client().get("/embed")
    assert framed.headers["Content-Security-Policy"].endswith("frame-ancestors *")
    assert "X-Frame-Options" not in framed.headers
    strict = app.test_client().get("/")
    assert "frame-ancestors 'none'" in strict.headers["Content-Security-Policy"]


# --- every reader page, and the digest ------------------------------------------------


def _reader_paths(app: Flask, url: str) -> list[tuple[str, str]]:
    settings = app.extensions["mailer.settings"]
    links = LinkMaker(settings.base_url, settings.secret_keys)
    with app.extensions["mailer.sessionmaker"]() as session:
        reader = add_confirmed(session, "pat@example.org", ("article",), name="Pat")
        pending = Subscriber(
            email="new@example.org",
            status="pending",
            created_at=clock.now(),
            last_signup_at=clock.now(),
        )
        session.add(pending)
        session.flush()
        consent = Consent(
            subscriber_id=pending.id,
            requested_at=clock.now(),
            ip="",
            form="page",
            wording="w",
            topics="article",
        )
        session.add(consent)
        now = clock.now()
        notice = Notice(
            kind="article",
            title="Sleep and pain",
            url="https://site.example/s",
            source="admin",
            published_at=now,
            created_at=now,
        )
        session.add(notice)
        session.flush()
        campaign_id = campaigns.create_campaign(
            session, subject="Hello", notice_ids=[notice.id], now=now
        )
        campaigns.start_campaign(session, campaign_id, now=now)
        session.commit()
        consent_id, consent_key = consent.id, consent.token_key
        reader_key = session.get_one(Subscriber, reader).token_key
    mint = {
        "confirm": links.url("confirm", tokens.Purpose.CONFIRM, consent_id, bind=consent_key),
        "not-me": links.url("not-me", tokens.Purpose.NOT_ME, consent_id, bind=consent_key),
        "preferences": links.url(
            "preferences", tokens.Purpose.PREFERENCES, reader, bind=reader_key
        ),
        "change-address": links.url(
            "change-address",
            tokens.Purpose.ADDRESS_CHANGE,
            [reader, "pat@new.example"],
            bind=reader_key,
        ),
    }
    return [
        ("signup", "/"),
        ("embed", "/embed"),
        ("embed-compact", "/embed?compact=1"),
        ("embed-thanks", "/embed/thanks"),
        ("check-inbox", "/check-inbox"),
        ("confirm", mint["confirm"].removeprefix(url)),
        ("not-me", mint["not-me"].removeprefix(url)),
        ("link-invalid", "/confirm/forged"),
        ("preferences", mint["preferences"].removeprefix(url)),
        ("request-link", "/preferences"),
        ("unsubscribe", links.unsubscribe_url(reader, None, reader_key).removeprefix(url)),
        ("change-address", mint["change-address"].removeprefix(url)),
        ("not-found", "/no-such-page"),
        ("web-view", links.view_url(campaign_id).removeprefix(url)),
    ]


def test_every_reader_page_passes_axe_at_both_widths(
    live: tuple[Flask, str], page: Page, phone: Page
) -> None:
    app, url = live
    for name, path in _reader_paths(app, url):
        for target, width, suffix in ((page, DESKTOP["width"], "desktop"), (phone, 390, "phone")):
            target.goto(f"{url}{path}")
            assert_accessible(target, f"{path} at {suffix}")
            _no_sideways_scroll(target, width)
            _shot(target, f"reader-{name}-{suffix}")
    page.goto(f"{url}/")
    expect(page.locator(".site-footer")).to_contain_text("1 Test Street, Testville")
    assert "MAILER_POSTAL_ADDRESS" not in page.content()


def test_the_pages_after_a_button_pass_axe(
    live: tuple[Flask, str], phone: Page, inbox: Inbox
) -> None:
    app, url = live
    paths = dict(_reader_paths(app, url))
    phone.goto(f"{url}{paths['confirm']}")
    phone.get_by_role("button", name="Confirm my subscription").click()
    expect(phone.get_by_role("heading", name="You're subscribed")).to_be_visible()
    assert_accessible(phone, "confirmed")
    # No home URL set: back to the signup page, saying so.
    expect(phone.get_by_role("link", name="Back to the signup page")).to_be_visible()
    _shot(phone, "reader-confirmed-phone")
    phone.goto(f"{url}{paths['unsubscribe']}")
    phone.get_by_role("button", name="Unsubscribe from everything").click()
    expect(phone.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert_accessible(phone, "unsubscribed")


def test_the_preferences_page_preselects_the_browser_s_zone(
    live: tuple[Flask, str], browser: Browser
) -> None:
    app, url = live
    paths = dict(_reader_paths(app, url))
    for target in _context_page(browser, viewport=PHONE, timezone_id="Asia/Calcutta"):
        target.goto(f"{url}{paths['preferences']}")
        picker = target.get_by_label("Time zone for webinar times")
        expect(picker).to_have_value("Asia/Kolkata")  # the browser's old name, found
        expect(target.get_by_text("We chose your device's time zone")).to_be_visible()
        expect(
            target.get_by_label("One weekly digest, on Mondays at 08:00 your time")
        ).to_be_visible()
        _shot(target, "preferences-zone-phone")
        target.get_by_role("button", name="Save preferences").click()
        expect(target.get_by_role("status")).to_contain_text("Your preferences are saved")
    with app.extensions["mailer.sessionmaker"]() as session:
        assert (
            session.scalar(
                select(Subscriber.time_zone).where(Subscriber.email == "pat@example.org")
            )
            == "Asia/Kolkata"
        )


def test_the_digest_passes_axe_light_and_dark_and_reads_on_a_phone(
    live: tuple[Flask, str], browser: Browser, other_site: tuple[Path, str], inbox: Inbox
) -> None:
    app, _url = live
    folder, host = other_site
    (folder / "pain.png").write_bytes(_png(512, 256))
    now = clock.now()
    with app.extensions["mailer.sessionmaker"]() as session:
        add_confirmed(session, "ann@example.org", name="Ann")
        article = Notice(
            kind="article",
            title="Naltrexone for Fibromyalgia",
            url="https://site.example/n",
            summary="What the trials say, and what they do not.",
            image_url=f"{host}/pain.png",
            image_alt="A chart of pain scores falling over twelve weeks",
            source="admin",
            published_at=now,
            created_at=now,
        )
        webinar = Notice(
            kind="webinar",
            title="Sleep and pain",
            url="https://site.example/w",
            summary="An hour with a sleep researcher.",
            starts_at=now.replace(year=now.year + 1),
            duration_minutes=45,
            join_url="https://meet.example/s",
            source="admin",
            published_at=now,
            created_at=now,
        )
        session.add_all([article, webinar])
        session.commit()
        with running_worker(app):
            run_campaign(app, session, [article.id, webinar.id])
    [received] = inbox.wait_for("ann@example.org")
    html = received.message.get_body(("html",)).get_content()
    for scheme in ("light", "dark"):
        for viewport, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
            options: dict = {"viewport": viewport, "color_scheme": scheme}
            if viewport is PHONE:
                options.update(device_scale_factor=2, is_mobile=True)
            for target in _context_page(browser, **options):
                target.set_content(html)
                target.wait_for_load_state("networkidle")
                assert_accessible(target, f"the digest, {scheme}, {suffix}")
                _no_sideways_scroll(target, viewport["width"])
                image = target.get_by_role("img", name="A chart of pain scores")
                expect(image).to_be_visible()
                assert image.evaluate("i => i.naturalWidth") == 512
                name = f"digest-{scheme}-{suffix}"
                _shot(
                    target,
                    "digest-phone" if (scheme, suffix) == ("light", "phone") else name,
                    docs=(scheme, suffix) == ("light", "phone"),
                )


# --- every console page ---------------------------------------------------------------


def _console_paths(app: Flask) -> list[tuple[str, str]]:
    now = clock.now()
    with app.extensions["mailer.sessionmaker"]() as session:
        for number in range(12):
            add_confirmed(
                session,
                f"reader{number}@example.org",
                ("article", "video"),
                name=f"Reader Number {number}",
            )
        notices = [
            Notice(
                kind=kind,
                title=title,
                url=f"https://site.example/{index}",
                source="admin",
                published_at=now,
                created_at=now,
                image_url="https://site.example/i.png",
            )
            for index, (kind, title) in enumerate(
                [("article", "Naltrexone for Fibromyalgia"), ("video", "Gentle stretches")]
            )
        ]
        session.add_all(notices)
        session.flush()
        draft = campaigns.create_campaign(
            session,
            subject="New this week",
            notice_ids=[n.id for n in notices],
            intro="Two new pieces.",
            now=now,
        )
        session.commit()
    return [
        ("dashboard", "/admin/"),
        ("notices", "/admin/notices"),
        ("notice-new", "/admin/notices/new"),
        ("notice-edit", "/admin/notices/1/edit"),
        ("feeds", "/admin/feeds"),
        ("campaigns", "/admin/campaigns"),
        ("campaign-new", "/admin/campaigns/new"),
        ("campaign", f"/admin/campaigns/{draft}"),
        ("campaign-edit", f"/admin/campaigns/{draft}/edit"),
        ("campaign-preview", f"/admin/campaigns/{draft}/preview"),
        ("subscribers", "/admin/subscribers"),
        ("subscriber", "/admin/subscribers/1"),
        ("subscriber-erase", "/admin/subscribers/1/erase"),
        ("import", "/admin/subscribers/import"),
        ("bounces", "/admin/bounces"),
        ("accounts", "/admin/accounts"),
        ("audit", "/admin/audit"),
        ("site-settings", "/admin/settings"),
    ]


def test_every_console_page_passes_axe_and_scrolls_its_tables_on_a_phone(
    make_app: Callable[..., Flask], page: Page, phone: Page, inbox: Inbox
) -> None:
    port = free_port()
    app = make_app(base_url=f"http://127.0.0.1:{port}", postal_address="")
    make_account(app)
    paths = _console_paths(app)
    with serve(app, port) as url:
        # Logged out: the login page says "please log in" as information, not as success.
        page.goto(f"{url}/admin/campaigns")
        notice = page.locator(".flash")
        expect(notice).to_have_text("Please log in to see that page.")
        expect(notice).to_have_class(re.compile("flash-info"))
        assert_accessible(page, "login")
        _shot(page, "console-login")
        for target in (page, phone):
            log_in(target, url)
        # No postal address yet: the banner, and the first start's questions.
        expect(page.get_by_role("alert")).to_contain_text("Nothing can be sent yet")
        expect(page.get_by_role("heading", name="Welcome: two questions")).to_be_visible()
        _shot(page, "console-first-start")
        for name, path in paths:
            for target, width, suffix in ((page, 1280, "desktop"), (phone, 390, "phone")):
                target.goto(f"{url}{path}")
                assert_accessible(target, f"{path} at {suffix}")
                if suffix == "phone":
                    _no_sideways_scroll(target, width)
                _shot(target, f"console-{name}-{suffix}")
        # At 390 px a wide table scrolls inside its box instead of being cut off.
        phone.goto(f"{url}/admin/subscribers")
        wrap = phone.locator(".table-wrap").first
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")
        assert wrap.evaluate("w => getComputedStyle(w).overflowX") == "auto"

        page.goto(f"{url}/admin/")
        page.get_by_label("Your postal address").fill("12 Harbour Road, Bristol BS1 5TT")
        page.get_by_label("No: only the campaigns I start go out").check()
        page.get_by_role("button", name="Save and start").click()
        expect(page.get_by_role("status")).to_have_text(
            "Automatic sending is off: only the campaigns you start go out."
        )
        expect(page.get_by_text("Nothing can be sent yet")).to_have_count(0)
        page.goto(f"{url}/admin/settings")
        expect(page.get_by_label("Off: only the campaigns you start go out")).to_be_checked()
        page.get_by_label("Site name").fill("Pain Research News")
        page.get_by_role("button", name="Save settings").click()
        expect(page.get_by_role("status")).to_have_text("Saved: site name.")
        expect(page.locator(".console-name")).to_contain_text("Pain Research News")
        _shot(page, "console-site-settings-saved")

        # The campaign page, for the README.
        page.goto(f"{url}/admin/campaigns/1")
        expect(page.get_by_role("heading", name="New this week", level=1)).to_be_visible()
        _shot(page, "campaign-page", docs=True)
