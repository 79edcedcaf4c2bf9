"""`mailer admin create|list|set-password|deactivate`: console accounts from the command line.

A password is never a command-line argument (it would sit in the shell
history and in every `ps` listing): it is asked for, hidden and twice, or
read from the first line of stdin when that is not a terminal.
"""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from mailer import admins, clock, db, two_factor
from mailer.cli.common import fail
from mailer.errors import MailerError
from mailer.models import AdminRole


@click.group("admin", cls=AppGroup)
def admin_group() -> None:
    """Accounts of the admin console."""


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException("There was no password on stdin: its first line is read.")
    return password


@admin_group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice([role.value for role in AdminRole]), default="editor")
def admin_create(email: str, role: str) -> None:
    """Create an account for EMAIL; the password is asked for (or read from stdin)."""
    session = db.get_session()
    try:
        admin_id = admins.create_admin(session, email, _read_password(), role, clock.now())
        admins.audit(
            session, "cli", "account.create", email.strip().lower(), f"role {role}", now=clock.now()
        )
    except MailerError as error:
        fail(error)
    session.commit()
    click.echo(f"Account {admin_id} created: {email.strip().lower()} ({role}).")


@admin_group.command("list")
def admin_list() -> None:
    """Print every account: email, role, state, last login."""
    for account in admins.list_admins(db.get_session()):
        state = "active" if account.active else "deactivated"
        last = (
            account.last_login_at.isoformat(timespec="seconds")
            if account.last_login_at
            else "never"
        )
        click.echo(f"{account.email}\t{account.role}\t{state}\tlast login {last}")


def _account(email: str) -> admins.Account:
    try:
        account = admins.find(db.get_session(), email)
    except MailerError as error:
        fail(error)
    if account is None:
        raise click.ClickException(f"There is no account for {email}.")
    return account


@admin_group.command("set-password")
@click.argument("email")
def admin_set_password(email: str) -> None:
    """Give EMAIL a new password (asked for, or read from stdin); its sessions end."""
    account, session = _account(email), db.get_session()
    try:
        admins.set_password(session, account.id, _read_password())
    except MailerError as error:
        fail(error)
    admins.audit(session, "cli", "account.reset-password", account.email, now=clock.now())
    session.commit()
    click.echo(f"The password of {account.email} is changed; their sessions have ended.")


@admin_group.command("deactivate")
@click.argument("email")
def admin_deactivate(email: str) -> None:
    """Deactivate EMAIL's account: logged out at once, the audit trail stays."""
    account, session = _account(email), db.get_session()
    try:
        admins.deactivate(session, account.id)
    except MailerError as error:
        fail(error)
    admins.audit(session, "cli", "account.deactivate", account.email, now=clock.now())
    session.commit()
    click.echo(f"{account.email} is deactivated and logged out.")


@admin_group.command("reset-2fa")
@click.argument("email")
def admin_reset_2fa(email: str) -> None:
    """Turn EMAIL's two-factor sign-in off (a lost phone); its sessions end. Set it up anew."""
    account, session = _account(email), db.get_session()
    two_factor.disable(session, account.id)
    admins.audit(session, "cli", "account.2fa-reset", account.email, now=clock.now())
    session.commit()
    click.echo(f"Two-factor sign-in of {account.email} is off; they set it up again after login.")
