"""The newcomer's day, through `make run`'s own launcher, in Chromium and at the command line.

Someone trying mailer for the first time, in a fresh directory: the real
launcher (`python -m mailer.devserver`, what `make run` starts: gunicorn,
a Celery worker and beat), the confirmation mail read from var/outbox/, the
admin login the launcher prints, a webinar typed in as 17:00 in New York, a
campaign started from its page and watched to the end, the report, and the
`mailer` commands of that day on the same setup. On the embedded default
([sqlite]) and, with MAILER_DATABASE_URL and MAILER_BROKER_URL given to the
launcher, on PostgreSQL + Redis ([pg]). Screenshots of each step land in
tests/artifacts/newcomer-<backend>-NN-<step>.png.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, Response, expect, sync_playwright

from tests.helpers import CONFIRM_LINK, PREFERENCES_LINK, free_port, link, text_part, wait_until
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, DESKTOP

READER, READER_NAME = "chris@example.org", "Chris"
MORE_READERS = 120  # imported at the command line, so that the campaign takes a few seconds
FORM_MIN_SECONDS = 3.0  # the launcher keeps the default time trap
# Lines a newcomer would take for trouble. Celery and gunicorn print their level in
# brackets ("[INFO/MainProcess]", "[INFO]"); anything above INFO is worth a look.
TROUBLE = re.compile(
    r"Traceback|Exception|\b(ERROR|CRITICAL|FATAL)\b|WARNING|Warning:|warn\(|/ERROR|/WARNING"
)


@dataclass
class Launcher:
    """`make run` in a directory of its own: its URL, its var/, its printed output."""

    url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def admin_login(self) -> tuple[str, str]:
        found = re.search(r"log in as:\s+(\S+@\S+)\s+password: (\S+)", self.output)
        assert found, f"the launcher printed no admin login:\n{self.output}"
        return found.group(1), found.group(2)

    def mails_to(self, address: str) -> list[EmailMessage]:
        """Every .eml in var/outbox/ addressed to `address`, oldest first."""
        files = sorted((self.home / "var" / "outbox").glob("*.eml"), key=os.path.getmtime)
        mails = [message_from_bytes(path.read_bytes(), policy=policy.default) for path in files]
        return [mail for mail in mails if mail["To"] == address]  # type: ignore[misc]

    def mailer(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `mailer` command on the same setup, as the README says to run it."""
        done = subprocess.run(
            [sys.executable, "-m", "mailer.devserver", *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"mailer {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        assert not TROUBLE.search(done.stderr), done.stderr
        return done

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; the launcher stops web, worker and beat."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=90)


@pytest.fixture
def launcher(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Launcher]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    env["PORT"] = str(port)
    if backend == "pg":  # the same launcher, told where production's servers are
        env["MAILER_DATABASE_URL"] = request.getfixturevalue("empty_database_url")
        env["MAILER_BROKER_URL"] = request.getfixturevalue("redis_url")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailer.devserver"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Launcher(f"http://127.0.0.1:{port}", tmp_path, env, process)
    reader = threading.Thread(target=lambda: running.lines.extend(process.stdout or []))
    reader.start()
    try:
        wait_until(lambda: "Press Ctrl-C" in running.output, timeout=120, interval=0.2)
        yield running
    finally:
        running.stop()
        reader.join(timeout=30)
        if process.stdout:
            process.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


class Steps:
    """Numbered screenshots of one backend's day."""

    def __init__(self, page: Page, backend: str) -> None:
        self.page, self.backend, self.number = page, backend, 0

    def shot(self, name: str) -> None:
        self.number += 1
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"newcomer-{self.backend}-{self.number:02}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)


def _webinar_day() -> date:
    """Next year's 14 January: always ahead, and New York and Chicago keep standard time then."""
    return date(datetime.now(UTC).year + 1, 1, 14)


def _sign_up_and_confirm(launcher: Launcher, page: Page, steps: Steps) -> None:
    page.goto(f"{launcher.url}/")
    shown_at = time.monotonic()
    page.get_by_label("Name").fill(READER_NAME)
    page.get_by_label("Email").fill(READER)
    steps.shot("signup")
    time.sleep(max(0.0, FORM_MIN_SECONDS + 0.3 - (time.monotonic() - shown_at)))  # a person
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    steps.shot("check-inbox")

    [confirmation] = wait_until(lambda: launcher.mails_to(READER), timeout=60)
    page.goto(link(CONFIRM_LINK, confirmation))
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="You're subscribed")).to_be_visible()
    steps.shot("confirmed")

    welcome = wait_until(lambda: launcher.mails_to(READER)[1:], timeout=60)[0]
    page.goto(link(PREFERENCES_LINK, welcome))
    page.get_by_label("Time zone for webinar times").select_option("America/Chicago")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences are saved")
    steps.shot("preferences-chicago")


def _log_in_and_add_notices(launcher: Launcher, page: Page, steps: Steps, day: date) -> None:
    email, password = launcher.admin_login()
    page.goto(f"{launcher.url}/admin/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    steps.shot("console")
    # The first start's two questions: the postal address every mail carries, and
    # whether notices go out by themselves (not today: only the campaign started here).
    page.get_by_label("Your postal address").fill("12 Harbour Road, Bristol BS1 5TT")
    page.get_by_label("No: only the campaigns I start go out").check()
    page.get_by_role("button", name="Save and start").click()
    expect(page.get_by_role("status")).to_contain_text("only the campaigns you start go out")

    console = page.get_by_role("navigation", name="Console")
    for kind, title, url in (
        ("article", "Naltrexone for Fibromyalgia", "https://site.example/naltrexone"),
        ("webinar", "Sleep and pain: live questions", "https://site.example/sleep"),
    ):
        console.get_by_role("link", name="Notices").click()
        page.get_by_role("link", name="New notice").click()
        page.get_by_label("Kind").select_option(kind)
        page.get_by_label("Title").fill(title)
        page.get_by_label("Link to the page").fill(url)
        if kind == "webinar":
            page.get_by_label("Starts").fill(f"{day.isoformat()}T17:00")
            page.get_by_label("Duration in minutes").fill("45")
            page.get_by_label("Time zone").select_option("America/New_York")
            steps.shot("webinar-form")
        page.get_by_role("button", name="Save notice").click()
        expect(page.get_by_role("status")).to_have_text(re.compile(r"^Notice \d+ saved\.$"))
    steps.shot("notices")


def _compose_and_send(launcher: Launcher, page: Page, steps: Steps) -> str:
    """Compose, press Start, watch the progress to the end; return the campaign page's URL."""
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="Compose a campaign").click()
    page.get_by_label("Subject").fill("New this week")
    page.get_by_label("Naltrexone for Fibromyalgia").check()
    page.get_by_label("Sleep and pain: live questions").check()
    steps.shot("compose")
    page.get_by_role("button", name="Save campaign").click()
    expect(page.get_by_role("heading", name="New this week", level=1)).to_be_visible()
    campaign_url = page.url

    answers: list[Response] = []
    page.on("response", lambda answer: answers.append(answer) if "/admin/" in answer.url else None)
    page.on("dialog", lambda dialog: Dialog.accept(dialog))  # "Send … now?": yes
    page.get_by_role("button", name="Start sending now").click()
    expect(page.get_by_role("status")).to_contain_text("Sending to")
    steps.shot("sending")
    expect(page.locator("#campaign-status .badge")).to_have_text("finished", timeout=120_000)
    expect(page.locator("#progress-percent")).to_have_text("100%")
    steps.shot("finished")
    polls = [answer for answer in answers if answer.url.endswith("/progress.json")]
    assert polls, "the page never asked for its progress"
    # The page and every poll answered 200 throughout; the Start button's POST redirects.
    pages = [answer for answer in answers if answer.request.method == "GET"]
    assert {answer.status for answer in pages} == {200}, [
        (answer.url, answer.status) for answer in pages if answer.status != 200
    ]
    assert all(answer.status == 303 for answer in answers if answer.request.method == "POST")
    return campaign_url


def test_a_newcomers_day_on_the_launcher(
    launcher: Launcher, page: Page, backend: str, tmp_path: Path
) -> None:
    steps, day = Steps(page, backend), _webinar_day()
    readers = tmp_path / "readers.csv"
    readers.write_text(
        "email,name\n" + "".join(f"r{n}@example.org,Reader {n}\n" for n in range(MORE_READERS))
    )
    imported = launcher.mailer("subscribers", "import", str(readers), "--consent-proof", "paper")
    assert f"{MORE_READERS} imported" in imported.stdout + imported.stderr

    _sign_up_and_confirm(launcher, page, steps)
    _log_in_and_add_notices(launcher, page, steps, day)
    campaign_url = _compose_and_send(launcher, page, steps)

    page.goto(campaign_url)  # the report, as the admin comes back to it later
    report = page.locator("section", has=page.get_by_role("heading", name="Report"))
    expect(report.locator("[data-field=sent]")).to_have_text(str(MORE_READERS + 1))
    expect(report.locator("[data-field=failed]")).to_have_text("0")
    steps.shot("report")

    # The Chicago reader's digest: the New York webinar at 16:00 CST, the .ics in UTC.
    digest = wait_until(
        lambda: [mail for mail in launcher.mails_to(READER) if mail["Subject"] == "New this week"]
    )[0]
    assert f"{day:%A %d %B %Y}, 16:00 (CST)" in text_part(digest)
    [invitation] = [part for part in digest.walk() if part.get_content_type() == "text/calendar"]
    assert f"DTSTART:{day:%Y%m%d}T220000Z" in invitation.get_content().replace("\r\n", "\n")

    # The same day at the command line, on the same setup.
    campaign_id = campaign_url.rstrip("/").rsplit("/", 1)[1]
    status = launcher.mailer("campaign", "status", campaign_id, "--json").stdout
    assert json.loads(status) | {"rate": 0, "seconds_left": 0} == {
        "status": "finished",
        "total": MORE_READERS + 1,
        "sent": MORE_READERS + 1,
        "failed": 0,
        "bounced": 0,
        "skipped": 0,
        "pending": 0,
        "rate": 0,
        "seconds_left": 0,
    }
    page.goto(f"{launcher.url}/admin/notices")
    notice_ids = sorted(set(re.findall(r"/admin/notices/(\d+)/edit", page.content())))
    assert len(notice_ids) == 2
    again = launcher.mailer(
        "campaign", "create", "--subject", "Once more", "--notices", ",".join(notice_ids)
    ).stdout.strip()
    waited = launcher.mailer("campaign", "start", again, "--wait")
    assert f"Campaign {again} is finished: {MORE_READERS + 1} sent, 0 failed" in waited.stderr
    exported = list(csv.DictReader(io.StringIO(launcher.mailer("subscribers", "export").stdout)))
    assert {row["email"]: row["state"] for row in exported}[READER] == "confirmed"
    assert len(exported) == MORE_READERS + 1

    assert launcher.stop() == 0
    _nothing_looks_like_an_error(launcher)


def _nothing_looks_like_an_error(launcher: Launcher) -> None:
    """What the newcomer saw in the terminal all day: where to look, and no trouble."""
    output = launcher.output
    assert f"mailer is running: {launcher.url}/" in output
    assert "mail lands in:" in output and "log in as:" in output
    trouble = [line for line in output.splitlines() if TROUBLE.search(line)]
    assert trouble == [], "\n".join(trouble)
