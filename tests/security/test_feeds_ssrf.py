"""A feed URL reaches nothing internal, and only admins add feeds (issue 11, item 6).

The attack: an editor added a feed whose server redirected to 127.0.0.1; the
worker fetched the internal service, imported what it said, queued it for
mailing, and wrote its banner (Redis: "-ERR unknown command") into the feed's
last error. Every hop is now resolved and checked (mailer.safe_http), the
address connected to is checked again, and the console gets generic words.

The "public" site listens on 127.0.0.2, allowed by MAILER_FETCH_ALLOW as a
stand-in for the internet; 127.0.0.1 is the inside.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from mailer import safe_http
from mailer.models import Feed, Notice
from tests.admin_helpers import post, signed_in
from tests.conftest import running_worker
from tests.helpers import wait_until
from tests.security.flows import cli
from tests.security.servers import DnsStub, Site, rss

REFUSED = "refused: the URL leads to an internal address"


@pytest.fixture
def world() -> Iterator[tuple[Site, Site, DnsStub]]:
    public = Site(
        "127.0.0.2",
        {"/feed.rss": (200, {"Content-Type": "application/rss+xml"}, rss("Public", "public-1"))},
    )
    # The inside, on the same port as the public site: a second DNS answer would reach it.
    internal = Site(
        "127.0.0.1",
        {
            "/feed.rss": (200, {}, rss("Internal", "internal-1")),
            "/secret.rss": (200, {}, rss("Secret", "secret-1")),
        },
        port=public.port,
    )
    public.routes["/to-internal"] = (302, {"Location": internal.url("/secret.rss")}, b"")
    public.routes["/to-redis"] = (302, {"Location": "http://127.0.0.1:6379/"}, b"")
    dns = DnsStub(
        {
            "feeds.example.com": "127.0.0.2",
            "intranet.example.com": "127.0.0.1",
            "rebind.example.com": lambda n: "127.0.0.2" if n == 1 else "127.0.0.1",
        }
    )
    yield public, internal, dns
    for server in (public, internal, dns):
        server.close()


@pytest.fixture
def feed_app(make_app, world):
    public, _internal, dns = world
    # Port 6379 and the site's port are allowed: what is refused below is the address.
    return make_app(
        fetch_allow="127.0.0.2/32", fetch_ports=f"{public.port},6379", fetch_resolver=dns.address
    )


def _poll_from_the_console(app, session, client, urls: list[str]) -> list[Feed]:
    for url in urls:
        assert post(client, "/admin/feeds", {"url": url, "kind": "article"}).status_code == 303
    with running_worker(app):
        assert post(client, "/admin/feeds/poll").status_code == 303

        def polled() -> bool:
            session.expire_all()
            return all(feed.last_polled_at for feed in session.scalars(select(Feed)))

        wait_until(polled, timeout=30)
    return list(session.scalars(select(Feed).order_by(Feed.id)))


def _notices(session) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(Notice.title)))


def test_an_editor_cannot_add_or_poll_feeds(feed_app, session, world):
    public, _internal, _dns = world
    editor = signed_in(feed_app, "editor", "ed@example.com")
    added = post(editor, "/admin/feeds", {"url": public.url("/feed.rss"), "kind": "article"})
    polled = post(editor, "/admin/feeds/poll")
    assert added.status_code == 403 and polled.status_code == 403
    assert session.scalar(select(func.count()).select_from(Feed)) == 0
    assert editor.get("/admin/feeds").status_code == 200  # they still see the list


def test_a_redirect_inside_is_refused_and_tells_nothing_of_what_is_there(feed_app, session, world):
    public, internal, _dns = world
    admin = signed_in(feed_app)
    feeds = _poll_from_the_console(
        feed_app, session, admin, [public.url("/to-internal"), public.url("/to-redis")]
    )

    assert [feed.last_error for feed in feeds] == [REFUSED, REFUSED]
    assert internal.hits == [] and _notices(session) == []
    page = admin.get("/admin/feeds").text
    for leak in ("6379", "ERR", "127.0.0.1", "Connection refused"):
        assert leak not in page


def test_a_name_that_resolves_inside_is_refused(feed_app, session, world):
    _public, internal, _dns = world
    url = internal.url("/secret.rss", host="intranet.example.com")
    [feed] = _poll_from_the_console(feed_app, session, signed_in(feed_app), [url])
    assert feed.last_error == REFUSED
    assert internal.hits == [] and _notices(session) == []


def test_dns_rebinding_has_nothing_to_work_with(feed_app, session, world):
    public, internal, dns = world
    url = public.url("/feed.rss", host="rebind.example.com")
    [feed] = _poll_from_the_console(feed_app, session, signed_in(feed_app), [url])
    # One answer, checked and then connected to: the second, inside answer is never asked for.
    assert (feed.last_error, _notices(session)) == ("", ["Public"])
    assert dns.queries["rebind.example.com"] == 1
    assert internal.hits == [] and public.hits == ["/feed.rss"]


def test_other_ports_and_schemes_are_refused(feed_app, session, world):
    public, _internal, _dns = world
    admin = signed_in(feed_app)
    for url in ("file:///etc/passwd", "gopher://127.0.0.2/", "ftp://feeds.example.com/x"):
        answer = post(admin, "/admin/feeds", {"url": url, "kind": "article"})
        assert answer.status_code == 400 and "must be an http(s) URL" in answer.text
    closed = public.url("/feed.rss", host="feeds.example.com").replace(
        str(public.port), str(public.port + 1)
    )
    [feed] = _poll_from_the_console(feed_app, session, admin, [closed])
    assert feed.last_error == "refused: only the standard ports (80, 443) are fetched"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "[::1]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",
        "[2002:7f00:1::1]",  # 6to4 around 127.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 around 169.254.169.254
    ],
)
def test_no_internal_address_is_fetched(address):
    with pytest.raises(safe_http.FetchError) as refused:
        safe_http.fetch(f"http://{address}/", safe_http.Policy(timeout=2))
    assert refused.value.public == REFUSED


def test_the_cli_poll_is_held_to_the_same_rules(feed_app, session, world):
    public, internal, _dns = world
    feed_id = int(
        cli(feed_app, "feed", "add", public.url("/to-internal"), "--kind", "article").output
    )
    polled = cli(feed_app, "feed", "poll")
    assert polled.exit_code == 1 and REFUSED in polled.output
    assert internal.hits == [] and _notices(session) == []
    assert session.get_one(Feed, feed_id).last_error == REFUSED
