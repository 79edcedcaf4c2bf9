"""The outbox pages: only on the embedded default, each mail shown as its recipient sees it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask

from mailer import clock
from mailer.sending import get_mailroom
from tests.admin_helpers import signed_in

SCRIPTED = (
    "<p>Hello <b>reader</b></p>"
    "<script>document.body.insertAdjacentHTML('beforeend', '<p id=ran>ran</p>')</script>"
)


def outbox_app(make_app: Callable[..., Flask], folder: Path) -> Flask:
    """An app on the embedded default's transport, with one HTML mail (carrying a script) in it."""
    app = make_app(smtp_url=f"outbox:{folder}")
    outgoing = get_mailroom(app).composer.assemble(
        to="ann@example.org",
        subject="Your notices",
        text="Hello reader, in plain text.",
        html=SCRIPTED,
        now=clock.now(),
    )
    get_mailroom(app).transport.send([outgoing])
    return app


def test_the_outbox_lists_and_shows_each_mail(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = outbox_app(make_app, tmp_path)
    client = signed_in(app, "editor", "ed@example.com")
    assert 'href="/admin/outbox"' in client.get("/admin/").get_data(as_text=True)
    listing = client.get("/admin/outbox").get_data(as_text=True)
    [name] = [path.name for path in tmp_path.glob("*.eml")]
    assert f'href="/admin/outbox/{name}"' in listing
    assert "ann@example.org" in listing and "Your notices" in listing

    page = client.get(f"/admin/outbox/{name}").get_data(as_text=True)
    assert "<h1>Your notices</h1>" in page
    assert "<dt>From</dt>" in page and "Health Notices &lt;notices@mailer.test&gt;" in page
    assert "Hello reader, in plain text." in page
    assert f'sandbox title="The mail as HTML" src="/admin/outbox/{name}/html"' in page

    frame = client.get(f"/admin/outbox/{name}/html")
    assert "<b>reader</b>" in frame.get_data(as_text=True)
    policy = frame.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy  # the script cannot run

    raw = client.get(f"/admin/outbox/{name}/raw")
    assert raw.mimetype == "message/rfc822" and b"Subject: Your notices" in raw.data


def test_only_outbox_files_can_be_opened(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    app = outbox_app(make_app, tmp_path / "outbox")
    (tmp_path / "secret.eml").write_text("Subject: not yours\n\nsecret")
    client = signed_in(app)
    for name in ("..%2Fsecret.eml", "secret.eml", "20260101T000000-aaaaaaaaaaaa.eml", "x"):
        assert client.get(f"/admin/outbox/{name}").status_code == 404, name
        assert client.get(f"/admin/outbox/{name}/html").status_code == 404, name


def test_no_outbox_with_a_real_relay(app: Flask) -> None:
    client = signed_in(app)
    answer = client.get("/admin/outbox")
    assert answer.status_code == 404
    assert "There is no outbox: mail goes to a real relay." in answer.get_data(as_text=True)
    assert 'href="/admin/outbox"' not in client.get("/admin/").get_data(as_text=True)
