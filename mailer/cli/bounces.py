"""`mailer bounces process`: read the bounce mailbox now (the beat does it every 5 minutes)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from mailer import bounces, clock, mailbox


@click.group("bounces", cls=AppGroup)
def bounces_group() -> None:
    """Bounce reports, complaints and mailto unsubscribes."""


@bounces_group.command("process")
@click.option("--mailbox", "url", help="another mailbox URL (default: MAILER_BOUNCE_MAILBOX)")
def bounces_process(url: str | None) -> None:
    """Apply every unread report in the mailbox and print the count of each outcome."""
    settings = current_app.extensions["mailer.settings"]
    url = url or settings.bounce_mailbox
    if not url:
        raise click.ClickException("MAILER_BOUNCE_MAILBOX is not set (or give --mailbox URL)")
    try:
        counts = mailbox.process(
            url,
            current_app.extensions["mailer.sessionmaker"],
            secret_key=settings.secret_keys,
            clock=clock.now,
        )
    except mailbox.MailboxUnavailable as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{sum(counts.values())} messages processed")
    for outcome in bounces.Outcome:
        if counts[outcome]:
            click.echo(f"  {outcome.value}: {counts[outcome]}")
    if sum(counts[outcome] for outcome in bounces.NEEDS_A_HUMAN):
        click.echo("messages flagged for a person to read were left unseen in the mailbox")
