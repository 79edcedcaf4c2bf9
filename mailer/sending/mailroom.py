"""The Mailroom: every part outbound mail needs, built once per process from Settings.

Web views, the CLI and the worker's tasks reach outbound mail only through
this object (`get_mailroom()` inside an app, `Mailroom.from_settings` outside one),
registered under one extension key. It knows no HTTP and no Celery.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from mailer.sending import batch, breaker, ratelimit, signing, transactional, transport
from mailer.sending.batch import BatchOutcome
from mailer.sending.breaker import Breaker
from mailer.sending.compose import Composer
from mailer.sending.digest import sample, web_view
from mailer.sending.ledger import BatchSettings, CampaignLedger
from mailer.sending.links import LinkMaker
from mailer.sending.ratelimit import Bucket
from mailer.sending.renderers import RendererCache, load_renderer
from mailer.sending.transport import Outgoing, SendResult, Transport
from mailer.settings import Settings
from mailer.site import SiteCache
from mailer.site import defaults as site_defaults

KEY = "mailer.mailroom"


@dataclass(frozen=True, slots=True)
class Retry:
    """How a transactional mail's temporary failures are retried."""

    backoff: float = 30.0  # the first delay in seconds; doubles each time
    max_retries: int = 8

    def delay(self, retries: int) -> float:
        # Exponential backoff with full jitter, capped at an hour: a relay that
        # throttled many mails at once is not hit again by all of them at once.
        return random.uniform(0, min(3600, self.backoff * 2**retries))  # noqa: S311 - a spread, no secret


@dataclass(frozen=True)
class Mailroom:
    transport: Transport
    composer: Composer
    links: LinkMaker
    bucket: Bucket
    breaker: Breaker
    batch: BatchSettings
    renderers: RendererCache
    retry: Retry
    site_time_zone: str
    base_url: str
    site: SiteCache  # the site settings in force at send time (sender, name, address, look)

    @classmethod
    def from_settings(
        cls, settings: Settings, templates: Path, site: SiteCache | None = None
    ) -> Mailroom:
        """Build every part; a bad DKIM key stops start-up here (SettingsError)."""
        composer = Composer(
            templates,
            sender=settings.sender,
            sender_domain=settings.sender_domain,
            defaults={
                "base_url": settings.base_url,
                "view_url": "",
                **site_defaults(settings).mail_context(),
            },
        )
        links = LinkMaker(settings.base_url, settings.secret_keys, settings.sender_domain)
        return cls(
            transport=transport.from_url(
                settings.smtp_url,
                timeout=settings.smtp_timeout,
                signer=signing.from_settings(settings),
            ),
            composer=composer,
            links=links,
            bucket=ratelimit.for_broker(settings.broker_url, settings.send_rate),
            breaker=Breaker(breaker.for_broker(settings.broker_url)),
            batch=BatchSettings.from_settings(settings),
            renderers=RendererCache(
                composer, site_time_zone=settings.site_time_zone, view_url=links.view_url
            ),
            retry=Retry(settings.retry_backoff, settings.retry_max),
            site_time_zone=settings.site_time_zone,
            base_url=settings.base_url,
            site=site or SiteCache(settings),
        )

    def send_mail(self, session: Session, mail_id: int, *, now: datetime, retries: int) -> str:
        """Send transactional mail `mail_id`; TemporaryFailure when it should be retried."""
        return transactional.send_transactional(
            session,
            mail_id,
            transport=self.transport,
            composer=self.composer,
            links=self.links,
            site=self.site.get(session),
            now=now,
            final_attempt=retries >= self.retry.max_retries,
        )

    def send_batch(
        self,
        factory: sessionmaker[Session],
        campaign_id: int,
        *,
        clock: Callable[[], datetime],
    ) -> BatchOutcome:
        """Claim, send and record one batch of the campaign."""
        with factory() as session:
            renderer = self.renderers.get(session, campaign_id, self.site.get(session))
        return batch.send_batch(
            CampaignLedger(factory, campaign_id, self.batch, clock),
            renderer=renderer,
            links=self.links,
            transport=self.transport,
            bucket=self.bucket,
            breaker=self.breaker,
        )

    def sample(
        self, session: Session, campaign_id: int, *, to: str, now: datetime
    ) -> Outgoing | None:
        """The campaign as a reader of all its topics gets it, links disarmed (preview, test)."""
        renderer = load_renderer(
            session,
            campaign_id,
            self.composer,
            site_time_zone=self.site_time_zone,
            site=self.site.get(session),
            view_url=self.links.view_url(campaign_id),
        )
        return sample(renderer, to=to, base_url=self.base_url, now=now)

    def web_view(self, session: Session, campaign_id: int) -> str | None:
        """The HTML of a campaign's "view in your browser" page (no reader's data in it)."""
        renderer = load_renderer(
            session,
            campaign_id,
            self.composer,
            site_time_zone=self.site_time_zone,
            site=self.site.get(session),
        )
        return web_view(renderer, base_url=self.base_url)

    def send_test(
        self, session: Session, campaign_id: int, *, to: str, now: datetime
    ) -> SendResult | None:
        """Send one copy of the campaign to `to`, subject marked [Test]; None: nothing to send."""
        outgoing = self.sample(session, campaign_id, to=to, now=now)
        if outgoing is None:
            return None
        [result] = self.transport.send([outgoing])
        return result

    def close(self) -> None:
        """Say goodbye to the relay (an SMTP transport keeps its connection open)."""
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()


def init_app(app: Flask, settings: Settings, templates: Path, site: SiteCache) -> None:
    """Build the process's Mailroom and keep it in app.extensions."""
    app.extensions[KEY] = Mailroom.from_settings(settings, templates, site)


def get_mailroom(app: Flask | None = None) -> Mailroom:
    """The Mailroom of `app`, or of the current app."""
    return (app or current_app).extensions[KEY]
