"""`mailer campaign list|create|preview|send-test|start|status|pause|resume|cancel|resend-failed`.

Every command that changes a campaign writes it to the audit log, as the
console does, under `cli:<login name>`.
"""

from __future__ import annotations

import json
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from mailer import addresses, campaigns, clock, db, site, stats
from mailer.cli.common import audit, current_site, fail, progress_summary, when, who
from mailer.errors import MailerError
from mailer.jobs import get_jobs
from mailer.models import Campaign
from mailer.sending import get_mailroom
from mailer.sending.transport import Outgoing


@click.group("campaign", cls=AppGroup)
def campaign_group() -> None:
    """Compose, start and watch campaigns."""


@campaign_group.command("list")
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
@click.option("--all", "show_all", is_flag=True, help="Also automatic sends that mailed nobody.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def campaign_list(limit: int, show_all: bool, as_json: bool) -> None:
    """List the newest campaigns with their state and counts."""
    rows = stats.campaign_counts(db.get_session(), limit=limit, hide_empty_automatic=not show_all)
    if not rows and not as_json:
        click.echo("There are no campaigns yet.")
    for row in rows:
        if as_json:
            click.echo(json.dumps(_row_json(row)))
            continue
        kind = "" if row.kind == "manual" else f" (automatic: {row.kind})"
        click.echo(
            f"{row.id:>6}  {row.status:<9}  {row.sent:>7} sent  {row.failed:>5} failed  "
            f"{row.pending:>7} pending  {row.subject}{kind}"
        )


def _row_json(row: stats.CampaignCounts) -> dict[str, object]:
    fields = ("id", "subject", "status", "kind", "total", "sent", "failed", "bounced", "pending")
    times = ("created_at", "send_at", "started_at", "finished_at")
    return {
        **{name: getattr(row, name) for name in fields},
        **{name: (value.isoformat() if (value := getattr(row, name)) else None) for name in times},
    }


@campaign_group.command("create")
@click.option("--subject", required=True, help="The mail's subject line.")
@click.option("--notices", "notice_ids", required=True, help="Notice ids, such as 1,2,3.")
@click.option("--topics", default="", help="Audience topics, such as article,video (default: all).")
@click.option("--intro", default="", help="A few words above the notices.")
@click.option("--at", "send_at", help="Schedule it: ISO 8601 with an offset (default: a draft).")
def campaign_create(
    subject: str, notice_ids: str, topics: str, intro: str, send_at: str | None
) -> None:
    """Create a campaign and print its id."""
    try:
        ids = [int(part) for part in notice_ids.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("--notices takes ids such as 1,2,3.") from None
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
        audit(session, "campaign.create", f"campaign {campaign_id}", " ".join(subject.split()))
    except MailerError as error:
        fail(error)
    session.commit()
    click.echo(campaign_id)


def _sample(campaign_id: int, to: str) -> Outgoing:
    with db.sessions()() as session:
        if session.get(Campaign, campaign_id) is None:
            raise click.ClickException(f"There is no campaign with id {campaign_id}.")
        outgoing = get_mailroom().sample(session, campaign_id, to=to, now=clock.now())
    if outgoing is None:
        raise click.ClickException("None of the campaign's notices match its topics.")
    return outgoing


@campaign_group.command("preview")
@click.argument("campaign_id", type=int)
@click.option("--text", is_flag=True, help="Print the plain-text part instead of the HTML.")
def campaign_preview(campaign_id: int, text: bool) -> None:
    """Print the digest as a subscriber of all its topics sees it (HTML, or --text)."""
    message = _sample(campaign_id, "preview@example.com").message
    click.echo(message.get_body(("plain",) if text else ("html",)).get_content())


@campaign_group.command("send-test")
@click.argument("campaign_id", type=int)
@click.option("--to", "address", required=True, help="Your own address.")
def campaign_send_test(campaign_id: int, address: str) -> None:
    """Queue the digest once to ADDRESS, subject marked [Test], before starting the campaign.

    A worker sends it and records the relay's answer in the console's audit log.
    """
    try:
        address = addresses.normalise(address, check_deliverability=False)
    except MailerError as error:
        fail(error)
    _sample(campaign_id, address)  # refuses a campaign with nothing to send, here and now
    if not get_jobs().send_test(campaign_id, address, actor=who()):
        raise click.ClickException("The task queue is unreachable; try again in a minute.")
    click.echo(f"A test of campaign {campaign_id} is on its way to {address}.")


def _progress(campaign_id: int) -> campaigns.Progress:
    with current_app.extensions["mailer.sessionmaker"]() as session:
        return campaigns.progress(session, campaign_id, now=clock.now())


@campaign_group.command("start")
@click.argument("campaign_id", type=int)
@click.option("--wait", is_flag=True, help="Show a progress bar until the campaign is done.")
def campaign_start(campaign_id: int, wait: bool) -> None:
    """Plan the deliveries and start sending."""
    count = _campaign_action(campaign_id, "start")
    if wait:
        with click.progressbar(
            length=count, label="Sending", show_pos=True, file=sys.stderr
        ) as bar:
            done = 0
            while True:
                state = _progress(campaign_id)
                finished = state.sent + state.failed + state.skipped
                bar.update(finished - done)
                done = finished
                if state.status in {"finished", "cancelled"} or (not state.pending and count):
                    break
                time.sleep(0.5)
        state = _progress(campaign_id)
        progress_summary(
            f"Campaign {campaign_id} is {state.status}: {state.sent} sent, {state.failed} failed, "
            f"{state.bounced} bounced, {state.skipped} skipped of {state.total}."
        )


@campaign_group.command("status")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
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
        audit(session, f"campaign.{action}", f"campaign {campaign_id}", outcome.message)
    except MailerError as error:
        fail(error)
    session.commit()
    if outcome.restart_sending and not get_jobs().start_sending(campaign_id):
        click.echo("The task queue is unreachable; the beat starts sending within a minute.")
    click.echo(f"Campaign {campaign_id}: {outcome.message}")
    return _progress(campaign_id).total


HELP = {
    "pause": "Pause a sending campaign; resume goes on where it stopped.",
    "resume": "Resume a paused campaign.",
    "cancel": "Cancel a campaign for good: nothing more of it is sent.",
    "resend-failed": "Queue the failed deliveries of a campaign again.",
}
for _action, _help in HELP.items():
    campaign_group.command(_action, help=_help)(
        click.argument("campaign_id", type=int)(
            lambda campaign_id, _a=_action: _campaign_action(campaign_id, _a)
        )
    )
