"""Outbound mail, all of it: composition, transport, DKIM, pacing, the campaign ledger and loop.

- compose: the one composer (templates in, a complete message out)
- digest: a campaign's digest for any recipient, each audience variant rendered once
- renderers: each campaign's renderer, kept per worker process
- transactional: confirmation, welcome and other one-off mails
- links: signed links and token addresses in mail (unsubscribe, preferences, VERP)
- transport: how mail leaves (SMTP relay or outbox folder); signing: DKIM
- ratelimit: the global send rate; breaker: the relay's health over the last minute
- ledger: one campaign's Delivery rows (claim, lease, record, retry)
- batch: the loop that sends a claimed batch, seeing only the ledger and the transport
- mailroom: the one object that holds all of the above, built once from Settings
"""

from mailer.sending.mailroom import Mailroom, get_mailroom

__all__ = ["Mailroom", "get_mailroom"]
