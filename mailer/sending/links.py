"""The absolute, signed links and token addresses that go into mail."""

from __future__ import annotations

from dataclasses import dataclass

from mailer import tokens


@dataclass(frozen=True, slots=True)
class LinkMaker:
    """Builds the absolute, signed links and the token addresses that go into mail."""

    base_url: str
    secret_key: str
    mail_domain: str = "localhost"  # the From domain: VERP and mailto-unsubscribe addresses

    def url(self, path: str, purpose: tokens.Purpose, subject_id: int) -> str:
        return f"{self.base_url}/{path}/{tokens.make(self.secret_key, purpose, subject_id)}"

    def unsubscribe_token(self, subscriber_id: int, campaign_id: int | None) -> str:
        return tokens.make_compact(
            self.secret_key, tokens.Purpose.UNSUBSCRIBE, subscriber_id, campaign_id or 0
        )

    def unsubscribe_url(self, subscriber_id: int, campaign_id: int | None) -> str:
        """The one-click URL (RFC 8058): GET shows a page, POST unsubscribes."""
        return f"{self.base_url}/u/{self.unsubscribe_token(subscriber_id, campaign_id)}"

    def unsubscribe_mailto(self, subscriber_id: int, campaign_id: int | None) -> str:
        token = self.unsubscribe_token(subscriber_id, campaign_id)
        return f"mailto:unsubscribe+{token}@{self.mail_domain}?subject=unsubscribe"

    def view_url(self, campaign_id: int) -> str:
        """The campaign's "view in your browser" page: the same for every reader."""
        token = tokens.make_compact(self.secret_key, tokens.Purpose.WEB_VIEW, campaign_id)
        return f"{self.base_url}/view/{token}"

    def return_path(self, purpose: tokens.Purpose, subject_id: int) -> str:
        """The VERP envelope sender: a bounce names the mail it is about by its address."""
        token = tokens.make_compact(self.secret_key, purpose, subject_id)
        return f"bounce+{token}@{self.mail_domain}"
