"""`mailer notice add`, `mailer feed add|poll`, `mailer api-token create`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from mailer import api_tokens, clock, db, feeds, notices, safe_http
from mailer.cli.common import fail, when
from mailer.errors import MailerError


@click.group("notice", cls=AppGroup)
def notice_group() -> None:
    """Notices of new articles, videos and webinars."""


@notice_group.command("add")
@click.option("--kind", type=click.Choice(["article", "video", "webinar"]), required=True)
@click.option("--title", required=True)
@click.option("--url", required=True)
@click.option("--summary", default="")
@click.option("--image-url", default="")
@click.option("--published-at", help="ISO 8601 with offset; default now")
@click.option("--starts-at", help="webinars: ISO 8601 with offset")
@click.option("--duration-minutes", type=int, help="webinars")
@click.option("--time-zone", default="", help="webinars: IANA zone it is announced in")
@click.option("--join-url", default="", help="webinars")
def notice_add(
    kind: str,
    title: str,
    url: str,
    summary: str,
    image_url: str,
    published_at: str | None,
    starts_at: str | None,
    duration_minutes: int | None,
    time_zone: str,
    join_url: str,
) -> None:
    """Record a notice and print its id."""
    session = db.get_session()
    draft = notices.NoticeDraft(
        kind=kind,
        title=title,
        url=url,
        summary=summary,
        image_url=image_url,
        published_at=when(published_at),
        starts_at=when(starts_at),
        duration_minutes=duration_minutes,
        time_zone=time_zone,
        join_url=join_url,
    )
    try:
        notice_id = notices.create_notice(session, draft, source="cli", now=clock.now())
    except MailerError as error:
        fail(error)
    session.commit()
    click.echo(notice_id)


@click.group("api-token", cls=AppGroup)
def api_token_group() -> None:
    """Bearer tokens for the CMS API."""


@api_token_group.command("create")
@click.argument("name")
def api_token_create(name: str) -> None:
    """Create a token for NAME (who holds it, e.g. cms) and print it, this once only."""
    session = db.get_session()
    try:
        token = api_tokens.create_token(session, name=name, now=clock.now())
    except MailerError as error:
        fail(error)
    session.commit()
    click.echo(token)
    click.echo("Store it now: only its hash is kept, so it cannot be shown again.", err=True)


@click.group("feed", cls=AppGroup)
def feed_group() -> None:
    """RSS and Atom feeds that notices are imported from."""


@feed_group.command("add")
@click.argument("url")
@click.option("--kind", type=click.Choice(["article", "video", "webinar"]), required=True)
@click.option("--review", is_flag=True, help="its notices wait for approval (always for http://)")
def feed_add(url: str, kind: str, review: bool) -> None:
    """Poll URL for notices of KIND from now on; print the feed's id."""
    session = db.get_session()
    try:
        feed_id = feeds.add_feed(session, url=url, kind=kind, now=clock.now(), review=review)
    except MailerError as error:
        fail(error)
    session.commit()
    click.echo(feed_id)


def _set_feed(feed_id: int, **change: bool) -> None:
    session = db.get_session()
    try:
        feed = feeds.set_feed(session, feed_id, **change)
    except MailerError as error:
        fail(error)
    session.commit()
    state = "enabled" if feed.enabled else "disabled"
    click.echo(
        f"feed {feed.id} {feed.url}: {state}{', review' if feeds.needs_review(feed) else ''}"
    )


@feed_group.command("disable")
@click.argument("feed_id", type=int)
def feed_disable(feed_id: int) -> None:
    """Stop polling FEED_ID (its notices stay)."""
    _set_feed(feed_id, enabled=False)


@feed_group.command("enable")
@click.argument("feed_id", type=int)
def feed_enable(feed_id: int) -> None:
    """Poll FEED_ID again."""
    _set_feed(feed_id, enabled=True)


@feed_group.command("delete")
@click.argument("feed_id", type=int)
def feed_delete(feed_id: int) -> None:
    """Remove FEED_ID for good (the notices it brought stay)."""
    session = db.get_session()
    try:
        url = feeds.delete_feed(session, feed_id)
    except MailerError as error:
        fail(error)
    session.commit()
    click.echo(f"feed {feed_id} {url} deleted")


@feed_group.command("poll")
def feed_poll() -> None:
    """Poll every enabled feed now (beat does it every 15 minutes); fail if any feed did."""
    results = feeds.poll_all(
        current_app.extensions["mailer.sessionmaker"],
        safe_http.Policy.from_settings(current_app.extensions["mailer.settings"]),
        clock=clock.now,
    )
    for result in results:
        outcome = (
            f"failed: {result.error}"
            if result.error
            else f"{result.imported} imported, {result.skipped} skipped"
        )
        click.echo(f"feed {result.feed_id} {result.url}: {outcome}")
    failed = sum(1 for result in results if result.error)
    if failed:
        # Every feed was polled all the same; the status is for cron and monitoring.
        raise click.ClickException(f"{failed} of {len(results)} feeds failed")
