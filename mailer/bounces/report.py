"""What an incoming report says, before it is matched to our records, and what came of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mailer.errors import MailerError

MAX_DIAGNOSTIC = 500


class Kind(enum.StrEnum):
    """What a report is, as far as reading it tells."""

    BOUNCE = "bounce"  # one or more failed (or delayed) recipients: see Report.failures
    COMPLAINT = "complaint"  # ARF abuse report, or a provider's complaint event
    UNSUBSCRIBE = "unsubscribe"  # mail to the List-Unsubscribe mailto
    NO_FAILURE = "no_failure"  # a report that reports nothing wrong: delivered, not-spam, auth
    AUTO_REPLY = "auto_reply"  # out of office, vacation: nobody bounced
    UNRECOGNISED = "unrecognised"  # no detector understands it


class Severity(enum.StrEnum):
    HARD = "hard"  # permanent: the address is dead
    SOFT = "soft"  # temporary, or a warning that delivery is delayed


class Outcome(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBED = "unsubscribed"
    DUPLICATE = "duplicate"  # applied before: nothing changed
    IGNORED = "ignored"  # understood, nothing to do: an auto-reply, a "delivered" DSN
    UNMATCHED = "unmatched"  # about no mail we can show we sent
    UNRECOGNISED = "unrecognised"  # quotes our mail, but nothing says what happened to it
    FORGED = "forged"  # a bounce+/unsubscribe+ address whose token does not verify
    MALFORMED = "malformed"  # cannot be read at all (too large, too deep, broken)


# What a mailbox leaves unseen and flagged for a person instead of marking it done.
NEEDS_A_HUMAN = frozenset(
    {Outcome.UNMATCHED, Outcome.UNRECOGNISED, Outcome.FORGED, Outcome.MALFORMED}
)


class MalformedReport(MailerError):
    """A message that cannot be read as mail at all; says what is wrong."""


class InvalidEvents(MailerError):
    """A webhook body that is not what the README documents; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a report says could not be reached."""

    address: str  # normalised; "" when the report does not say
    severity: Severity
    status: str = ""  # the enhanced status code (RFC 3463), "5.1.1"
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What in a report could name a mail of ours. Tokens are unverified until matched."""

    bounce_tokens: tuple[str, ...] = ()  # after `bounce+`: a Delivery or TransactionalMail
    unsubscribe_tokens: tuple[str, ...] = ()  # after `unsubscribe+`: subscriber and campaign
    message_ids: tuple[str, ...] = ()  # Message-IDs of the mail it is about

    def __bool__(self) -> bool:
        return bool(self.bounce_tokens or self.unsubscribe_tokens or self.message_ids)


@dataclass(frozen=True, slots=True)
class Report:
    """One report, read. `envelope` is where it was sent to; `quoted` is what it quotes."""

    kind: Kind
    failures: tuple[Failure, ...] = ()
    envelope: Evidence = field(default_factory=Evidence)
    quoted: Evidence = field(default_factory=Evidence)
    recipient: str = ""  # the address it names (an ARF Original-Rcpt-To, a webhook's email)
    diagnostic: str = ""  # for complaints: the feedback type
    source: str = "mailbox"  # mailbox, webhook, ses, sendgrid, mailgun, postmark
    # A provider that proved who it is may name the recipient by address alone:
    # the mail went out through it. Mail in the bounce mailbox never may.
    authenticated: bool = False
    raw: str = ""  # the report as received, kept for the console


def clean(text: object, limit: int = MAX_DIAGNOSTIC) -> str:
    """One line of printable text, cut to `limit`."""
    flat = " ".join(str(text).split())
    return "".join(c for c in flat if c.isprintable())[:limit]
