"""`mailer auto pause|resume|status`: the switch for automatic notices, digests and reminders."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from mailer import automatic, clock, db
from mailer.cli.common import audit, who
from mailer.jobs import get_jobs


@click.group("auto", cls=AppGroup)
def auto_group() -> None:
    """Automatic sends: notices as published, weekly digests, webinar reminders."""


def _show(state: automatic.Status) -> None:
    if state.paused:
        click.echo(
            f"Automatic sending is paused since {state.changed_at:%Y-%m-%d %H:%M} UTC, "
            f"by {state.changed_by}."
        )
    else:
        click.echo("Automatic sending is on.")
    for campaign in state.campaigns:
        counts = ", ".join(f"{n} {name}" for name, n in sorted(campaign["deliveries"].items()))
        click.echo(
            f"  campaign {campaign['id']:>5}  {campaign['kind']:<9} {campaign['status']:<9} "
            f"{campaign['slot']}  ({counts or 'no deliveries'})"
        )


@auto_group.command("pause")
def auto_pause() -> None:
    """Stop automatic sending; automatic campaigns now sending pause where they are."""
    session = db.get_session()
    state = automatic.pause(session, now=clock.now(), by=who())
    audit(session, "automatic.pause", "automatic sending")
    session.commit()
    _show(state)


@auto_group.command("resume")
def auto_resume() -> None:
    """Start automatic sending again; what the pause held goes on where it stopped."""
    session = db.get_session()
    resumed = automatic.resume(session, now=clock.now(), by=who())
    audit(session, "automatic.resume", "automatic sending")
    session.commit()
    for campaign_id in resumed:  # committed first, then queued
        get_jobs().start_sending(campaign_id)
    _show(automatic.status(session))


@auto_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def auto_status(as_json: bool) -> None:
    """Whether automatic sending is on, and the latest automatic campaigns."""
    state = automatic.status(db.get_session())
    if as_json:
        click.echo(json.dumps(state.as_dict()))
    else:
        _show(state)
