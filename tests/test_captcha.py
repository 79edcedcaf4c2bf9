"""The CAPTCHA hook, against a local siteverify server speaking Turnstile's protocol."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from mailer.models import Subscriber
from tests.helpers import free_port, post_signup


class Siteverify(BaseHTTPRequestHandler):
    """Answers success for the response "solved", failure otherwise; records each request."""

    seen: list[dict[str, list[str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        Siteverify.seen.append(form)
        solved = form.get("response") == ["solved"] and form.get("secret") == ["s3cret"]
        body = {"success": solved, "error-codes": [] if solved else ["invalid-input-response"]}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def siteverify() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Siteverify)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Siteverify.seen.clear()
    yield f"http://127.0.0.1:{server.server_port}/siteverify"
    server.shutdown()
    server.server_close()


@pytest.fixture
def captcha_app(make_app, siteverify):
    return make_app(
        captcha_provider="turnstile",
        captcha_site_key="site-key",
        captcha_secret="s3cret",
        captcha_verify_url=siteverify,
    )


def _subscribers(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Subscriber))


def test_widget_and_script_are_on_the_page(captcha_app):
    response = captcha_app.test_client().get("/")
    html = response.get_data(as_text=True)
    assert 'class="cf-turnstile" data-sitekey="site-key"' in html
    assert "challenges.cloudflare.com" in response.headers["Content-Security-Policy"]


def test_solved_captcha_lets_the_signup_through(captcha_app, session):
    client = captcha_app.test_client()
    response = post_signup(
        client,
        captcha_app,
        email="ann@example.org",
        ip="203.0.113.9",
        **{"cf-turnstile-response": "solved"},
    )
    assert response.headers["Location"] == "/check-inbox"
    assert _subscribers(session) == 1
    assert Siteverify.seen[0]["remoteip"] == ["203.0.113.9"]


@pytest.mark.parametrize("answer", ["wrong", ""])
def test_failed_captcha_gets_the_neutral_page_and_writes_nothing(captcha_app, session, answer):
    client = captcha_app.test_client()
    response = post_signup(
        client, captcha_app, email="ann@example.org", **{"cf-turnstile-response": answer}
    )
    assert response.headers["Location"] == "/check-inbox"
    assert _subscribers(session) == 0


def test_unreachable_captcha_service_fails_closed(make_app, session):
    app = make_app(
        captcha_provider="hcaptcha",
        captcha_secret="s3cret",
        captcha_verify_url=f"http://127.0.0.1:{free_port()}/siteverify",
    )
    client = app.test_client()
    response = post_signup(client, app, email="ann@example.org", **{"h-captcha-response": "solved"})
    assert response.status_code == 503
    assert "Nothing was saved" in response.get_data(as_text=True)
    assert _subscribers(session) == 0
