"""`mailer subscribers data|erase EMAIL`: one subscriber's data on request (GDPR Art. 15-20)."""

from __future__ import annotations

import getpass
import json

import click
from flask.cli import with_appcontext

from mailer import addresses, admins, clock, db, privacy
from mailer.cli.common import fail
from mailer.errors import MailerError
from mailer.sending import get_mailroom


def _subscriber_id(email: str) -> int:
    try:
        address = addresses.normalise(email, check_deliverability=False)
        return privacy.find_subscriber(db.get_session(), address)
    except MailerError as error:
        fail(error)


@click.command("data")
@click.argument("email")
@with_appcontext
def subscriber_data(email: str) -> None:
    """Print everything held about EMAIL as JSON."""
    data = privacy.export_subscriber(db.get_session(), _subscriber_id(email))
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@with_appcontext
def subscriber_erase(email: str, yes: bool) -> None:
    """Erase EMAIL's personal data; keep only a hash so it is never mailed again."""
    subscriber_id = _subscriber_id(email)
    if not yes:
        click.confirm(f"Erase every record of {email}? This cannot be undone", abort=True)
    session = db.get_session()
    privacy.erase_subscriber(session, subscriber_id, now=clock.now())
    # Named by id: the address itself is what was erased.
    admins.audit(
        session,
        f"cli:{getpass.getuser()}",
        "subscriber.erase",
        f"subscriber {subscriber_id}",
        now=clock.now(),
    )
    session.commit()
    removed = privacy.forget_outbox_mail(get_mailroom().transport, email)
    click.echo(
        f"erased {email}; its hash stays on the suppression list"
        + (f"; {removed} copies deleted from the outbox" if removed else "")
    )
