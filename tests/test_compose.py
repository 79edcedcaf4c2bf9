"""The composer: RFC 5322/2047 headers, multipart order, no header injection."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from mailer.sending import get_mailroom
from mailer.sending.compose import Composer, topic_phrase
from mailer.sending.transport import OutboxTransport

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _composer(app, sender="Health Notices <notices@mailer.test>"):
    return Composer(
        get_mailroom(app).composer.env.loader.searchpath[0],
        sender=sender,
        sender_domain="mailer.test",
        defaults=get_mailroom(app).composer.defaults,
    )


def _build(composer, **overrides):
    values = {
        "to": "ann@example.org",
        "subject": "Welcome",
        "now": NOW,
        "context": {
            "name": "Ann",
            "topics": ["article"],
            "preferences_url": "http://mailer.test/p/x",
        },
    }
    values.update(overrides)
    return composer.build("welcome", **values)


def test_non_ascii_display_name_and_subject_are_rfc2047_encoded(app):
    outgoing = _build(
        _composer(app, sender="Gesundheit für Alle <notices@mailer.test>"),
        subject="Willkommen — schön, dass Sie da sind",
    )
    raw = outgoing.message.as_bytes()
    assert b"=?utf-8?" in raw and raw.isascii()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["From"].addresses[0].display_name == "Gesundheit für Alle"
    assert parsed["Subject"] == "Willkommen — schön, dass Sie da sind"
    assert parsed["Date"] == "Tue, 24 Nov 2026 12:00:00 +0000"


@pytest.mark.parametrize("subject", ["Hi\r\nBcc: victim@example.org", "Hi\nX-Evil: 1"])
def test_header_injection_is_impossible(app, subject):
    with pytest.raises(ValueError):
        _build(_composer(app), subject=subject)


def test_parts_text_first_html_last_and_under_gmail_clipping(app):
    message = _build(_composer(app)).message
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    html = message.get_body(("html",)).get_content()
    assert len(html.encode()) < 100_000
    assert "<script" not in html and "style=" in html


def test_outbox_writes_one_eml_per_message(app, tmp_path):
    outbox = OutboxTransport(tmp_path)
    results = outbox.send([_build(_composer(app)), _build(_composer(app))])
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 2 and all(result.error is None for result in results)
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["X-Envelope-To"] == "ann@example.org"
    assert parsed["Message-ID"] in {result.message_id for result in results}


@pytest.mark.parametrize(
    ("topics", "phrase"),
    [
        (["article"], "articles"),
        (["article", "video"], "articles and videos"),
        (["article", "video", "webinar"], "articles, videos and webinars"),
        ([], "notices"),
    ],
)
def test_topic_phrase(topics, phrase):
    assert topic_phrase(topics) == phrase
