"""Each campaign's DigestRenderer, built once per worker process and kept for its batches."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from mailer import campaigns
from mailer.models import Campaign
from mailer.sending.compose import Composer
from mailer.sending.digest import DigestRenderer
from mailer.site import SiteSettings


def load_renderer(
    session: Session,
    campaign_id: int,
    composer: Composer,
    *,
    site_time_zone: str,
    site: SiteSettings | None = None,
    view_url: str = "",
) -> DigestRenderer:
    """A renderer for the campaign, with its notices in the order the editor chose."""
    campaign = session.get_one(Campaign, campaign_id)
    notices = campaigns.campaign_notices(session, campaign_id)
    session.expunge_all()
    return DigestRenderer(
        composer, campaign, notices, site_time_zone=site_time_zone, site=site, view_url=view_url
    )


class RendererCache:
    """The renderers of the last few campaigns this process sent.

    A renderer keeps every audience variant it rendered, so building it once per
    campaign (not per batch) is what makes a batch cheap. A weekly digest gains
    notices as later time zones come due: a new notice count is a new renderer,
    and so is a new version of the site settings (name, address, look, sender).
    """

    def __init__(
        self,
        composer: Composer,
        *,
        site_time_zone: str,
        view_url: Callable[[int], str] | None = None,
        size: int = 8,
    ) -> None:
        self.composer, self.site_time_zone, self.size = composer, site_time_zone, size
        self.view_url = view_url
        self._renderers: dict[tuple[int, int, int], DigestRenderer] = {}

    def get(
        self, session: Session, campaign_id: int, site: SiteSettings | None = None
    ) -> DigestRenderer:
        key = (
            campaign_id,
            campaigns.notice_count(session, campaign_id),
            site.version if site else -1,
        )
        if key not in self._renderers:
            self._renderers[key] = load_renderer(
                session,
                campaign_id,
                self.composer,
                site_time_zone=self.site_time_zone,
                site=site,
                view_url=self.view_url(campaign_id) if self.view_url else "",
            )
        while len(self._renderers) > self.size:  # a long-lived worker sees many campaigns
            self._renderers.pop(next(iter(self._renderers)))
        return self._renderers[key]
