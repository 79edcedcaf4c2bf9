"""Bounces, complaints and mailto unsubscribes: read an incoming report, match it, apply it.

Reports come by mail (delivery status notifications, RFC 3464, and the
proprietary formats of older MTAs; ARF complaints, RFC 5965; mail to the
List-Unsubscribe mailto) or from a relay's webhook, and every path ends in
`applying.apply`. A report acts only on mail we can show we sent (see
`matching`): its VERP address, or the Message-ID it quotes, or a provider
that proved who it is. The modules, in the order a message goes through:

- mime: reading hostile mail safely (size, nesting, charsets), what it quotes
- standard, detection: what a message says (RFC 3464/5965 and flufl.bounce)
- matching: which mail of ours it is about; forged tokens
- applying: hard and soft bounces, complaints, unsubscribes, the event ledger
- processing: one mailbox message in its own transaction
- events, providers: the generic webhook and the providers' own formats
- history: the ledger for the console (listing, rates per campaign)
"""

from mailer.bounces.applying import SOFT_BOUNCES_TO_SUPPRESS, apply
from mailer.bounces.events import apply_events, reports_from_events
from mailer.bounces.processing import process_message, read
from mailer.bounces.report import (
    NEEDS_A_HUMAN,
    Failure,
    InvalidEvents,
    Kind,
    MalformedReport,
    Outcome,
    Report,
    Severity,
)

__all__ = [
    "NEEDS_A_HUMAN",
    "SOFT_BOUNCES_TO_SUPPRESS",
    "Failure",
    "InvalidEvents",
    "Kind",
    "MalformedReport",
    "Outcome",
    "Report",
    "Severity",
    "apply",
    "apply_events",
    "process_message",
    "read",
    "reports_from_events",
]
