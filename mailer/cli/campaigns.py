"""`mailer campaign create|preview|send-test|start|status|pause|resume|cancel|resend-failed`."""

from __future__ import annotations

import getpass
import json
import time

import click
from flask import current_app
from flask.cli import AppGroup

from mailer import addresses, campaigns, clock, db, site
from mailer.cli.common import current_site, fail, when
from mailer.errors import MailerError
from mailer.jobs import get_jobs
from mailer.models import Campaign
from mailer.sending import get_mailroom
from mailer.sending.transport import Outgoing


@click.group("campaign", cls=AppGroup)
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
        if send_at:
            site.require_ready(current_site(session))
        campaign_id = campaigns.create_campaign(
            session,
            subject=subject,
            notice_ids=ids,
            topics=[topic.strip() for topic in topics.split(",") if topic.strip()],
            intro=intro,
            send_at=when(send_at),
            now=clock.now(),
        )
    except MailerError as error:
        fail(error)
    session.commit()
    click.echo(campaign_id)


def _sample(campaign_id: int, to: str) -> Outgoing:
    with db.sessions()() as session:
        if session.get(Campaign, campaign_id) is None:
            raise click.ClickException(f"no campaign with id {campaign_id}")
        outgoing = get_mailroom().sample(session, campaign_id, to=to, now=clock.now())
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
    """Queue the digest once to ADDRESS, subject marked [Test], before starting the campaign.

    A worker sends it and records the relay's answer in the console's audit log.
    """
    try:
        address = addresses.normalise(address, check_deliverability=False)
    except MailerError as error:
        fail(error)
    _sample(campaign_id, address)  # refuses a campaign with nothing to send, here and now
    if not get_jobs().send_test(campaign_id, address, actor=f"cli:{getpass.getuser()}"):
        raise click.ClickException("the task queue is unreachable; try again in a minute")
    click.echo(f"test of campaign {campaign_id} queued for {address}")


def _progress(campaign_id: int) -> campaigns.Progress:
    with current_app.extensions["mailer.sessionmaker"]() as session:
        return campaigns.progress(session, campaign_id, now=clock.now())


@campaign_group.command("start")
@click.argument("campaign_id", type=int)
@click.option("--wait", is_flag=True, help="show a progress bar until the campaign is done")
def campaign_start(campaign_id: int, wait: bool) -> None:
    """Plan the deliveries and start sending."""
    count = _campaign_action(campaign_id, "start")
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
        fail(error)
    if as_json:
        click.echo(json.dumps(state.as_dict()))
        return
    for name, value in state.as_dict().items():
        click.echo(f"{name:>13}: {value}")


def _campaign_action(campaign_id: int, action: str) -> int:
    """Do `action` and say what it did; return the campaign's planned recipients."""
    session = db.get_session()
    try:
        outcome = campaigns.apply_action(
            session, campaign_id, action, now=clock.now(), site=current_site(session)
        )
    except MailerError as error:
        fail(error)
    session.commit()
    if outcome.restart_sending and not get_jobs().start_sending(campaign_id):
        click.echo("the task queue is unreachable; the beat starts sending within a minute")
    click.echo(f"campaign {campaign_id}: {outcome.message}")
    return _progress(campaign_id).total


for _action in ("pause", "resume", "cancel", "resend-failed"):
    campaign_group.command(_action, help=f"{_action.capitalize()} a campaign.")(
        click.argument("campaign_id", type=int)(
            lambda campaign_id, _a=_action: _campaign_action(campaign_id, _a)
        )
    )
