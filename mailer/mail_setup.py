"""Binds the transport, the composer and the link maker to an app, built once from settings."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from mailer import ratelimit, transport
from mailer.compose import Composer
from mailer.mailing import LinkMaker
from mailer.settings import Settings


def init_app(app: Flask, settings: Settings, templates: Path) -> None:
    """Store the process's one transport, composer and link maker in app.extensions."""
    app.extensions["mailer.transport"] = transport.from_url(
        settings.smtp_url, timeout=settings.smtp_timeout
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
    app.extensions["mailer.links"] = LinkMaker(settings.base_url, settings.secret_key)
    app.extensions["mailer.bucket"] = ratelimit.for_broker(settings.broker_url, settings.send_rate)
    app.extensions["mailer.renderers"] = {}  # campaign id -> DigestRenderer, per process
