"""Feed import against a local HTTP server serving real RSS 2.0 and Atom documents."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer import clock, feeds
from mailer.cli import main
from mailer.models import Feed, Notice
from tests.helpers import free_port

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
  <channel>
    <title>Health articles</title>
    <link>https://health.example/</link>
    <description>New articles</description>
    <item>
      <title>Sleep &amp; your heart</title>
      <link>https://health.example/articles/sleep</link>
      <guid isPermaLink="false">article-101</guid>
      <description><![CDATA[<p>Seven hours <b>matter</b>.</p><p>Here is why.</p>]]></description>
      <pubDate>Tue, 03 Mar 2026 09:30:00 +0100</pubDate>
      <media:thumbnail url="https://health.example/img/sleep.jpg"/>
    </item>
    <item>
      <title>Walking after meals</title>
      <link>https://health.example/articles/walking</link>
      <description>Ten minutes is enough.</description>
      <enclosure url="https://health.example/img/walk.png" type="image/png" length="1234"/>
    </item>
    <item>
      <link>https://health.example/articles/untitled</link>
      <guid>article-103</guid>
    </item>
    <item>
      <title>A link that is no web page</title>
      <link>javascript:alert(1)</link>
      <guid>article-104</guid>
    </item>
  </channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
  <title>Health videos</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2026-03-04T10:00:00Z</updated>
  <entry>
    <title type="html">Stretching &lt;em&gt;at your desk&lt;/em&gt;</title>
    <id>tag:health.example,2026:video-7</id>
    <link rel="alternate" href="https://health.example/videos/stretching"/>
    <updated>2026-03-04T10:00:00Z</updated>
    <summary type="html">&lt;p&gt;Five moves &amp;amp; no equipment.&lt;/p&gt;</summary>
    <media:content url="https://health.example/img/stretch.jpg" medium="image"/>
  </entry>
</feed>
"""

WEBINARS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:ev="http://purl.org/rss/1.0/modules/event/">
  <channel>
    <title>Webinars</title>
    <link>https://health.example/webinars</link>
    <description>Live sessions</description>
    <item>
      <title>Ask the nurse</title>
      <link>https://health.example/webinars/ask</link>
      <guid>webinar-9</guid>
      <ev:startdate>2026-12-01T17:00:00+01:00</ev:startdate>
      <ev:enddate>2026-12-01T17:45:00+01:00</ev:enddate>
    </item>
    <item>
      <title>No time given</title>
      <link>https://health.example/webinars/someday</link>
      <guid>webinar-10</guid>
    </item>
  </channel>
</rss>
"""

MAX_BYTES = 1024 * 1024  # the app's MAILER_FETCH_MAX_BYTES here
REFUSED_PORT = free_port()  # nothing listens there

# path -> (status, content type, body)
DOCUMENTS: dict[str, tuple[int, str, bytes]] = {
    "/articles.rss": (200, "application/rss+xml", RSS),
    "/videos.atom": (200, "application/atom+xml; charset=utf-8", ATOM),
    "/webinars.rss": (200, "application/rss+xml", WEBINARS),
    "/not-a-feed": (200, "text/plain", b"this is not XML at all <<<"),
    "/server-error": (500, "text/html", b"<h1>Internal Server Error</h1>"),
    "/huge.rss": (200, "application/rss+xml", b" " * (MAX_BYTES + 1)),
}


class FeedServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, content_type, body = DOCUMENTS.get(self.path, (404, "text/plain", b"no such"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FeedServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def app(make_app, site: str) -> Flask:
    # The feed server is on loopback: allowed here explicitly (tests/security checks the refusal).
    port = site.rsplit(":", 1)[1]
    return make_app(
        fetch_allow="127.0.0.1/32",
        fetch_ports=f"{port},{REFUSED_PORT}",
        fetch_max_bytes=MAX_BYTES,
    )


def _cli(app: Flask, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def _add(session: Session, url: str, kind: str = "article") -> int:
    feed_id = feeds.add_feed(session, url=url, kind=kind, now=clock.now())
    session.commit()
    return feed_id


def _notices(session: Session) -> dict[str, Notice]:
    session.expire_all()
    return {notice.guid or "": notice for notice in session.scalars(select(Notice))}


def test_feed_add_stores_the_feed_and_refuses_bad_ones(app, session, site):
    added = _cli(app, "feed", "add", f"{site}/articles.rss", "--kind", "article")

    assert added.exit_code == 0, added.output
    feed = session.get_one(Feed, int(added.stdout))
    assert (feed.url, feed.kind, feed.last_polled_at) == (f"{site}/articles.rss", "article", None)

    again = _cli(app, "feed", "add", f"{site}/articles.rss", "--kind", "video")
    assert again.exit_code != 0
    assert f"is already feed {feed.id}" in again.output
    local = _cli(app, "feed", "add", "file:///etc/passwd", "--kind", "article")
    assert local.exit_code != 0
    assert "url must be an http(s) URL" in local.output
    assert session.scalar(select(func.count()).select_from(Feed)) == 1


def test_poll_imports_each_entry_once_with_its_fields(app, session, site):
    _add(session, f"{site}/articles.rss", "article")
    _add(session, f"{site}/videos.atom", "video")

    first = _cli(app, "feed", "poll")

    assert first.exit_code == 0, first.output
    assert "2 imported, 2 skipped" in first.stdout  # no title; a javascript: link
    assert "1 imported, 0 skipped" in first.stdout
    imported = _notices(session)
    assert set(imported) == {
        "article-101",
        "https://health.example/articles/walking",  # no guid: known by its link
        "tag:health.example,2026:video-7",
    }
    sleep = imported["article-101"]
    assert (sleep.kind, sleep.source, sleep.title) == ("article", "feed", "Sleep & your heart")
    assert sleep.url == "https://health.example/articles/sleep"
    assert sleep.summary == "Seven hours matter. Here is why."
    assert sleep.image_url == "https://health.example/img/sleep.jpg"
    assert sleep.published_at == datetime(2026, 3, 3, 8, 30, tzinfo=UTC)
    walking = imported["https://health.example/articles/walking"]
    assert walking.image_url == "https://health.example/img/walk.png"
    assert walking.summary == "Ten minutes is enough."
    assert abs((walking.published_at - clock.now()).total_seconds()) < 60  # no date: now
    video = imported["tag:health.example,2026:video-7"]
    assert (video.kind, video.title) == ("video", "Stretching at your desk")
    assert video.summary == "Five moves & no equipment."
    assert video.image_url == "https://health.example/img/stretch.jpg"
    assert video.published_at == datetime(2026, 3, 4, 10, tzinfo=UTC)

    second = _cli(app, "feed", "poll")

    assert second.exit_code == 0, second.output
    assert "0 imported, 2 skipped" in second.stdout
    assert len(_notices(session)) == 3
    counts = session.execute(select(Feed.imported_count, Feed.last_error).order_by(Feed.id)).all()
    assert [tuple(row) for row in counts] == [(2, ""), (1, "")]


def test_a_broken_feed_is_recorded_and_the_others_still_import(app, session, site):
    broken = {
        "not an RSS or Atom feed": _add(session, f"{site}/not-a-feed"),
        "HTTP 500": _add(session, f"{site}/server-error"),
        "could not be reached": _add(session, f"http://127.0.0.1:{REFUSED_PORT}/refused.rss"),
        "larger than 1 MB": _add(session, f"{site}/huge.rss"),
    }
    good = _add(session, f"{site}/articles.rss")

    result = _cli(app, "feed", "poll")

    assert result.exit_code == 1
    assert "4 of 5 feeds failed" in result.output
    session.expire_all()
    for reason, feed_id in broken.items():
        feed = session.get_one(Feed, feed_id)
        assert reason in feed.last_error
        assert feed.last_polled_at is not None
        assert feed.imported_count == 0
    feed = session.get_one(Feed, good)
    assert (feed.last_error, feed.imported_count) == ("", 2)
    assert len(_notices(session)) == 2


def test_a_webinar_feed_takes_its_times_from_the_event_module(app, session, site):
    _add(session, f"{site}/webinars.rss", "webinar")

    result = _cli(app, "feed", "poll")

    assert "1 imported, 1 skipped" in result.stdout  # the one without a start time
    webinar = _notices(session)["webinar-9"]
    assert webinar.starts_at == datetime(2026, 12, 1, 16, tzinfo=UTC)
    assert webinar.duration_minutes == 45


def test_the_beat_task_polls_every_feed(app, session, site):
    from worker import tasks

    _add(session, f"{site}/articles.rss")
    _add(session, f"{site}/videos.atom", "video")

    with app.app_context():
        imported = tasks.poll_feeds.apply().get()

    assert imported == 3
    assert len(_notices(session)) == 3
