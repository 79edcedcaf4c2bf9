"""The `mailer` command: database migrations and housekeeping, with the app's settings."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click
from alembic import command
from alembic.config import Config
from flask import current_app
from flask.cli import FlaskGroup

from mailer import (
    addresses,
    api_tokens,
    campaigns,
    clock,
    create_app,
    db,
    delivery,
    digest,
    feeds,
    notices,
    subscriptions,
)
from mailer.errors import MailerError
from mailer.models import Campaign
from mailer.transport import Outgoing

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration, built in code: no alembic.ini to keep in step."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at `database_url` to `revision`."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False)
def main() -> None:
    """mailer: newsletter and notice service."""


@main.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    upgrade(current_app.extensions["mailer.settings"].database_url, revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    command.downgrade(
        alembic_config(current_app.extensions["mailer.settings"].database_url), revision
    )
    click.echo(f"database at {revision}")


@main.command("purge")
def purge() -> None:
    """Delete unconfirmed signups past their 7 days now (beat does this hourly)."""
    session = db.get_session()
    count = subscriptions.purge_unconfirmed(session, now=clock.now())
    session.commit()
    click.echo(f"purged {count} unconfirmed signups")


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a time zone offset, e.g. +01:00 or Z")
    return moment


def _fail(error: MailerError) -> NoReturn:
    raise click.ClickException(str(error))


@main.group("notice")
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
        published_at=_when(published_at),
        starts_at=_when(starts_at),
        duration_minutes=duration_minutes,
        time_zone=time_zone,
        join_url=join_url,
    )
    try:
        notice_id = notices.create_notice(session, draft, source="cli", now=clock.now())
    except MailerError as error:
        _fail(error)
    session.commit()
    click.echo(notice_id)


@main.group("campaign")
def campaign_group() -> None:
    """Compose, start and watch campaigns."""


@campaign_group.command("create")
@click.option("--subject", required=True)
@click.option("--notices", "notice_ids", required=True, help="comma-separated notice ids")
@click.option("--topics", default="", help="comma-separated audience; default all topics")
@click.option("--intro", default="")
@click.option("--at", "send_at", help="ISO 8601 with offset: schedule instead of a draft")
def campaign_create(
    subject: str, notice_ids: str, topics: str, intro: str, send_at: str | None
) -> None:
    """Create a campaign and print its id."""
    try:
        ids = [int(part) for part in notice_ids.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("--notices takes ids such as 1,2,3") from None
    session = db.get_session()
    try:
        campaign_id = campaigns.create_campaign(
            session,
            subject=subject,
            notice_ids=ids,
            topics=[topic.strip() for topic in topics.split(",") if topic.strip()],
            intro=intro,
            send_at=_when(send_at),
            now=clock.now(),
        )
    except MailerError as error:
        _fail(error)
    session.commit()
    click.echo(campaign_id)


def _sample(campaign_id: int, to: str) -> Outgoing:
    settings = current_app.extensions["mailer.settings"]
    composer = current_app.extensions["mailer.composer"]
    with current_app.extensions["mailer.sessionmaker"]() as session:
        if session.get(Campaign, campaign_id) is None:
            raise click.ClickException(f"no campaign with id {campaign_id}")
        renderer = delivery.load_renderer(
            session, campaign_id, composer, site_time_zone=settings.site_time_zone
        )
    outgoing = digest.sample(renderer, to=to, base_url=settings.base_url, now=clock.now())
    if outgoing is None:
        raise click.ClickException("none of the campaign's notices match its topics")
    return outgoing


@campaign_group.command("preview")
@click.argument("campaign_id", type=int)
@click.option("--text", is_flag=True, help="the plain-text part instead of the HTML")
def campaign_preview(campaign_id: int, text: bool) -> None:
    """Print the digest as a subscriber of all its topics sees it (HTML, or --text)."""
    message = _sample(campaign_id, "preview@example.com").message
    click.echo(message.get_body(("plain",) if text else ("html",)).get_content())


@campaign_group.command("send-test")
@click.argument("campaign_id", type=int)
@click.option("--to", "address", required=True, help="your own address")
def campaign_send_test(campaign_id: int, address: str) -> None:
    """Send the digest once to ADDRESS, subject marked [Test], before starting the campaign."""
    try:
        address = addresses.normalise(address, check_deliverability=False)
    except MailerError as error:
        _fail(error)
    [result] = current_app.extensions["mailer.transport"].send([_sample(campaign_id, address)])
    if result.error is not None:
        raise click.ClickException(f"the relay refused the test: {result.error}")
    click.echo(f"test sent to {address} ({result.message_id})")


def _progress(campaign_id: int) -> campaigns.Progress:
    with current_app.extensions["mailer.sessionmaker"]() as session:
        return campaigns.progress(session, campaign_id, now=clock.now())


@campaign_group.command("start")
@click.argument("campaign_id", type=int)
@click.option("--wait", is_flag=True, help="show a progress bar until the campaign is done")
def campaign_start(campaign_id: int, wait: bool) -> None:
    """Plan the deliveries and start sending."""
    from worker.tasks import start_sending

    session = db.get_session()
    try:
        count = campaigns.start_campaign(session, campaign_id, now=clock.now())
    except MailerError as error:
        _fail(error)
    session.commit()
    start_sending(campaign_id)
    click.echo(f"campaign {campaign_id}: sending to {count} recipients")
    if wait:
        with click.progressbar(length=count, label="sending", show_pos=True) as bar:
            done = 0
            while True:
                state = _progress(campaign_id)
                finished = state.sent + state.failed + state.skipped
                bar.update(finished - done)
                done = finished
                if state.status in {"finished", "cancelled"} or (not state.pending and count):
                    break
                time.sleep(0.5)
        click.echo(json.dumps(_progress(campaign_id).as_dict()))


@campaign_group.command("status")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def campaign_status(campaign_id: int, as_json: bool) -> None:
    """Print the counts per delivery state."""
    try:
        state = _progress(campaign_id)
    except MailerError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(state.as_dict()))
        return
    for name, value in state.as_dict().items():
        click.echo(f"{name:>13}: {value}")


def _campaign_action(campaign_id: int, action: str) -> None:
    from worker.tasks import start_sending

    session = db.get_session()
    try:
        if action == "cancel":
            campaigns.cancel_campaign(session, campaign_id, now=clock.now())
        elif action == "resend-failed":
            click.echo(f"{campaigns.resend_failed(session, campaign_id)} deliveries queued again")
        else:
            campaigns.set_paused(session, campaign_id, paused=action == "pause")
    except MailerError as error:
        _fail(error)
    session.commit()
    if action in {"resume", "resend-failed"}:
        start_sending(campaign_id)
    click.echo(f"campaign {campaign_id}: {action} done")


for _action in ("pause", "resume", "cancel", "resend-failed"):
    campaign_group.command(_action, help=f"{_action.capitalize()} a campaign.")(
        click.argument("campaign_id", type=int)(
            lambda campaign_id, _a=_action: _campaign_action(campaign_id, _a)
        )
    )


@main.group("api-token")
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
        _fail(error)
    session.commit()
    click.echo(token)
    click.echo("Store it now: only its hash is kept, so it cannot be shown again.", err=True)


@main.group("feed")
def feed_group() -> None:
    """RSS and Atom feeds that notices are imported from."""


@feed_group.command("add")
@click.argument("url")
@click.option("--kind", type=click.Choice(["article", "video", "webinar"]), required=True)
def feed_add(url: str, kind: str) -> None:
    """Poll URL for notices of KIND from now on; print the feed's id."""
    session = db.get_session()
    try:
        feed_id = feeds.add_feed(session, url=url, kind=kind, now=clock.now())
    except MailerError as error:
        _fail(error)
    session.commit()
    click.echo(feed_id)


@feed_group.command("poll")
def feed_poll() -> None:
    """Poll every feed now (beat does it every 15 minutes); fail if any feed did."""
    results = feeds.poll_all(current_app.extensions["mailer.sessionmaker"], clock=clock.now)
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


if __name__ == "__main__":
    main()
