"""`mailer notice add|list`, `mailer feed add|poll`, `mailer api-token create`.

What changes data goes into the audit log, as in the console.
"""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from mailer import api_tokens, clock, db, feeds, notices, safe_http
from mailer.cli.common import audit, fail, when
from mailer.errors import MailerError
from mailer.models import Notice


@click.group("notice", cls=AppGroup)
def notice_group() -> None:
    """Notices of new articles, videos and webinars."""


@notice_group.command("add")
@click.option("--kind", type=click.Choice(["article", "video", "webinar"]), required=True)
@click.option("--title", required=True, help="The title as readers see it.")
@click.option("--url", required=True, help="The page on your site.")
@click.option("--summary", default="", help="A sentence or two under the title.")
@click.option("--image-url", default="", help="A picture shown above the title in the mail.")
@click.option("--image-alt", default="", help="What the picture shows (default: the title).")
@click.option("--published-at", help="ISO 8601 with an offset (default: now).")
@click.option("--starts-at", help="Webinars: when it starts, ISO 8601 with an offset.")
@click.option("--duration-minutes", type=int, help="Webinars: how long it lasts.")
@click.option("--time-zone", default="", help="Webinars: the IANA zone it is announced in.")
@click.option("--join-url", default="", help="Webinars: where to join.")
def notice_add(
    kind: str,
    title: str,
    url: str,
    summary: str,
    image_url: str,
    image_alt: str,
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
        image_alt=image_alt,
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
    audit(session, "notice.create", f"notice {notice_id}", " ".join(title.split()))
    session.commit()
    click.echo(notice_id)


@notice_group.command("list")
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def notice_list(limit: int, as_json: bool) -> None:
    """List the newest notices: id, kind, when published, where from, title."""
    rows = db.get_session().scalars(select(Notice).order_by(Notice.id.desc()).limit(limit)).all()
    if not rows and not as_json:
        click.echo("There are no notices yet.")
    for notice in rows:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": notice.id,
                        "kind": notice.kind,
                        "title": notice.title,
                        "url": notice.url,
                        "published_at": notice.published_at.isoformat(),
                        "source": notice.source,
                    }
                )
            )
        else:
            click.echo(
                f"{notice.id:>6}  {notice.kind:<7}  {notice.published_at:%Y-%m-%d %H:%M}  "
                f"{notice.source:<5}  {notice.title}"
            )


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
    audit(session, "api-token.create", name.strip()[:100])
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
    audit(session, "feed.add", f"feed {feed_id}", url.strip())
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
    """Poll every enabled feed now (the beat does it every 15 minutes); fail if any feed failed."""
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
        click.echo(f"Feed {result.feed_id} ({result.url}): {outcome}.")
    failed = sum(1 for result in results if result.error)
    if failed:
        # Every feed was polled all the same; the status is for cron and monitoring.
        raise click.ClickException(f"{failed} of {len(results)} feeds failed.")
