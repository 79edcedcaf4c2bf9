"""Binds the transport, the composer and the link maker to an app, built once from settings."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from mailer import breaker, dkim_signing, ratelimit, transport
from mailer.breaker import Breaker
from mailer.compose import Composer
from mailer.mailing import LinkMaker
from mailer.settings import Settings


def init_app(app: Flask, settings: Settings, templates: Path) -> None:
    """Store the process's one transport, composer and link maker in app.extensions."""
    # The key is loaded here, once per process; a bad one stops start-up (SettingsError).
    app.extensions["mailer.transport"] = transport.from_url(
        settings.smtp_url,
        timeout=settings.smtp_timeout,
        signer=dkim_signing.from_settings(settings),
    )
    app.extensions["mailer.composer"] = Composer(
        templates,
        sender=settings.sender,
        sender_domain=settings.sender_domain,
        defaults={
            "site_name": settings.site_name,
            "base_url": settings.base_url,
            "postal_address": settings.postal_address,
        },
    )
    app.extensions["mailer.links"] = LinkMaker(
        settings.base_url, settings.secret_keys, settings.sender_domain
    )
    app.extensions["mailer.bucket"] = ratelimit.for_broker(settings.broker_url, settings.send_rate)
    app.extensions["mailer.breaker"] = Breaker(breaker.for_broker(settings.broker_url))
    app.extensions["mailer.renderers"] = {}  # (campaign id, notice count) -> DigestRenderer
