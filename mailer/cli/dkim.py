"""`mailer dkim keygen`: a new DKIM signing key and the DNS record that publishes it."""

from __future__ import annotations

import os
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.cli import AppGroup

from mailer.sending.signing import public_record
from mailer.settings import PARSERS, Settings, SettingsError

TXT_STRING_MAX = 255  # one DNS character-string; longer values are split (RFC 6376 §3.6.2.2)


@click.group("dkim", cls=AppGroup)
def dkim_group() -> None:
    """DKIM signing keys."""


def _domain(given: str | None) -> str:
    """--domain, else MAILER_DKIM_DOMAIN or the domain of MAILER_FROM from the environment."""
    try:
        if given:
            return PARSERS["dkim_domain"](given.strip())
        settings = Settings.from_env()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--domain") from None
    except SettingsError as error:
        raise click.UsageError(f"pass --domain, or set the environment ({error})") from None
    return settings.dkim_domain or settings.sender_domain


def zone_line(selector: str, domain: str, value: str) -> str:
    """The TXT record in zone-file syntax, the value split into strings DNS can hold."""
    chunks = [value[i : i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)]
    return f"{selector}._domainkey.{domain}. IN TXT " + " ".join(f'"{chunk}"' for chunk in chunks)


# Runs without the app: MAILER_DKIM_KEY_FILE may already name the file this command creates,
# and the app refuses to start until it exists.
@dkim_group.command("keygen", with_appcontext=False)
@click.option("--selector", required=True, help="DNS label under _domainkey, e.g. mail2026.")
@click.option("--bits", type=click.Choice(["1024", "2048", "3072", "4096"]), default="2048")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--domain", help="Signing domain (default: MAILER_DKIM_DOMAIN, else MAILER_FROM's).")
def keygen(selector: str, bits: str, out: Path, domain: str | None) -> None:
    """Write a new RSA private key to OUT (mode 0600) and print the DNS TXT record to publish."""
    try:
        selector = PARSERS["dkim_selector"](selector.strip())
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--selector") from None
    signing_domain = _domain(domain)
    try:
        # O_EXCL: never replace a key whose public half may already be in DNS.
        handle = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{out} exists already; a key is never overwritten.") from None
    except OSError as error:
        raise click.ClickException(f"Cannot write {out}: {error.strerror}.") from None
    key = rsa.generate_private_key(public_exponent=65537, key_size=int(bits))
    with os.fdopen(handle, "wb") as file:
        file.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    click.echo(f"Wrote a {bits}-bit key to {out} (mode 0600). Publish this record:", err=True)
    click.echo(zone_line(selector, signing_domain, public_record(key)))
    click.echo(
        f"then set MAILER_DKIM_KEY_FILE={out.resolve()} MAILER_DKIM_SELECTOR={selector}", err=True
    )
