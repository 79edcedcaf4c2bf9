"""The absolute, signed links and token addresses that go into mail."""

from __future__ import annotations

from dataclasses import dataclass

from mailer import tokens


@dataclass(frozen=True, slots=True)
class LinkMaker:
    """Builds the absolute, signed links and the token addresses that go into mail.

    Each token is bound to its row (`bind`, `key`: see mailer.tokens), so the
    caller passes that row's token key along with its id.
    """

    base_url: str
    keys: tokens.Keys  # the secret key(s), newest first: tokens are signed with the first
    mail_domain: str = "localhost"  # the From domain: VERP and mailto-unsubscribe addresses

    def url(self, path: str, purpose: tokens.Purpose, value: object, *, bind: str) -> str:
        return f"{self.base_url}/{path}/{tokens.make(self.keys, purpose, value, bind=bind)}"

    def unsubscribe_token(self, subscriber_id: int, campaign_id: int | None, key: str) -> str:
        return tokens.make_compact(
            self.keys, tokens.Purpose.UNSUBSCRIBE, subscriber_id, campaign_id or 0, bind=key
        )

    def unsubscribe_url(self, subscriber_id: int, campaign_id: int | None, key: str) -> str:
        """The one-click URL (RFC 8058): GET shows a page, POST unsubscribes."""
        return f"{self.base_url}/u/{self.unsubscribe_token(subscriber_id, campaign_id, key)}"

    def unsubscribe_mailto(self, subscriber_id: int, campaign_id: int | None, key: str) -> str:
        token = self.unsubscribe_token(subscriber_id, campaign_id, key)
        return f"mailto:unsubscribe+{token}@{self.mail_domain}?subject=unsubscribe"

    def view_url(self, campaign_id: int) -> str:
        """The campaign's "view in your browser" page: the same for every reader (no row key)."""
        token = tokens.make_compact(self.keys, tokens.Purpose.WEB_VIEW, campaign_id, bind="")
        return f"{self.base_url}/view/{token}"

    def return_path(self, purpose: tokens.Purpose, subject_id: int, *, bind: str) -> str:
        """The VERP envelope sender: a bounce names the mail it is about by its address."""
        token = tokens.make_compact(self.keys, purpose, subject_id, bind=bind)
        return f"bounce+{token}@{self.mail_domain}"
