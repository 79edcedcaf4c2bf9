"""`make run`'s launcher: web, worker and beat on the embedded default, with no servers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from email import message_from_bytes, policy
from http.cookiejar import CookieJar
from pathlib import Path

from tests.helpers import free_port, wait_until


def _get(opener: urllib.request.OpenerDirector, url: str) -> str:
    with opener.open(url, timeout=10) as response:
        return response.read().decode()


def test_make_run_serves_the_whole_flow_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILER_")}
    env["PORT"] = str(port)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "mailer.devserver"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    lines: list[str] = []  # read while it runs: the login is printed at start
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(lambda: _up(opener, base), timeout=60, interval=0.5)
        html = _get(opener, f"{base}/")
        fields = dict(
            re.findall(r'name="(csrf_token|stamp|source)" type="hidden" value="([^"]*)"', html)
        )
        time.sleep(3.2)  # a person takes longer than the form's 3-second time trap
        body = urllib.parse.urlencode(
            {
                **fields,
                "form": "page",
                "name": "Ann",
                "email": "ann@example.org",
                "topics": ["article", "video"],
                "website": "",
            },
            doseq=True,
        ).encode()
        page = opener.open(f"{base}/subscribe", data=body, timeout=10).read().decode()
        assert "Check your inbox" in page

        outbox = tmp_path / "var" / "outbox"
        mail_file = wait_until(lambda: next(iter(outbox.glob("*.eml")), None), timeout=60)
        mail = message_from_bytes(mail_file.read_bytes(), policy=policy.default)
        assert mail["To"] == "ann@example.org"
        confirm = re.search(r"http://\S+/confirm/\S+", mail.get_body(("plain",)).get_content())
        assert confirm and confirm.group(0).startswith(base)
        assert _get(opener, confirm.group(0))  # the page is opened, and logged
        assert (tmp_path / "var" / "mailer.db").exists()

        # The printed login opens the console, whose outbox shows that very mail.
        printed = wait_until(lambda: _printed_login("".join(lines)), timeout=30)
        email, password = printed.groups()
        assert (tmp_path / "var" / "admin-password").read_text() == password
        admin = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        token = _csrf(_get(admin, f"{base}/admin/login"))
        login = urllib.parse.urlencode(
            {"csrf_token": token, "email": email, "password": password}
        ).encode()
        dashboard = admin.open(f"{base}/admin/login", data=login, timeout=10).read().decode()
        assert "<h1>Dashboard</h1>" in dashboard
        outbox = _get(admin, f"{base}/admin/outbox")
        assert "Please confirm your subscription" in outbox
    finally:
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends
        launcher.wait(timeout=60)
        reader.join(timeout=10)
        if launcher.stdout:
            launcher.stdout.close()
    output = "".join(lines)
    assert f"mailer is running: {base}/" in output
    token = confirm.group(0).rsplit("/", 1)[1]
    assert "GET /confirm/… HTTP/1.1" in output and token not in output  # the access log cut it
    assert "mailer stopped" in output
    assert launcher.returncode == 0


def _printed_login(output: str) -> re.Match[str] | None:
    return re.search(r"log in as:\s+(\S+@\S+)\s+password: (\S+)", output)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _up(opener: urllib.request.OpenerDirector, base: str) -> bool:
    try:
        return '"status":"ok"' in _get(opener, f"{base}/healthz").replace(" ", "")
    except OSError:
        return False
