"""The campaign batch loop: claim rows from the ledger, send them over one connection, record.

It sees the ledger (mailer.sending.ledger), the renderer that turns a claimed
row into a message, and the transport; the rate bucket and the circuit breaker
pace it. No SQL, no Celery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailer.models import CampaignStatus
from mailer.sending.breaker import Breaker
from mailer.sending.digest import DigestRenderer, Recipient
from mailer.sending.ledger import CampaignLedger, Claimed
from mailer.sending.links import LinkMaker
from mailer.sending.ratelimit import Bucket
from mailer.sending.transport import (
    Outgoing,
    PermanentFailure,
    RelayUnavailable,
    SendResult,
    Transport,
)
from mailer.tokens import Purpose, delivery_binding

# Replies that mean "you are sending too much": the whole campaign slows down.
THROTTLE = re.compile(r"^(421|450|451|452)\b.*(4\.7\.28|4\.7\.0|rate|too many|throttl)", re.I)


@dataclass
class BatchOutcome:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    released: int = 0
    hold_seconds: float = 0.0
    more: bool = False
    notes: list[str] = field(default_factory=list)


def personal(row: Claimed, campaign_id: int, links: LinkMaker) -> Recipient | None:
    """The claimed row's recipient with their own signed links; None once they left."""
    reader = row.reader
    if reader is None:
        return None
    return Recipient(
        email=reader.email,
        name=reader.name,
        topics=reader.topics,
        time_zone=reader.time_zone,
        preferences_url=links.url(
            "preferences", Purpose.PREFERENCES, row.subscriber_id, bind=reader.token_key
        ),
        unsubscribe_url=links.unsubscribe_url(row.subscriber_id, campaign_id, reader.token_key),
        unsubscribe_mailto=links.unsubscribe_mailto(
            row.subscriber_id, campaign_id, reader.token_key
        ),
        notice_ids=reader.notice_ids,
    )


def send_batch(
    ledger: CampaignLedger,
    *,
    renderer: DigestRenderer,
    links: LinkMaker,
    transport: Transport,
    bucket: Bucket,
    breaker: Breaker,
) -> BatchOutcome:
    """Claim, send and record one batch of the campaign; say whether more remain."""
    outcome = BatchOutcome()
    status, hold = ledger.state()
    now = ledger.clock()
    if status != CampaignStatus.SENDING:
        return outcome
    if hold is not None and hold > now:
        outcome.hold_seconds, outcome.more = (hold - now).total_seconds(), True
        return outcome
    claimed = ledger.claim()
    outcome.claimed = len(claimed)
    stop_reason = ""
    with ledger:
        for position, row in enumerate(claimed):
            if not stop_reason and not ledger.still_sending(claimed[position:]):
                stop_reason = "campaign paused or cancelled"
            if stop_reason:
                ledger.release(row.delivery_id, stop_reason, untried=True)
                continue
            recipient = personal(row, ledger.campaign_id, links)
            outgoing = _message(renderer, recipient, row, links, ledger)
            if outgoing is None:
                continue
            bucket.take()
            [result] = transport.send([outgoing])
            stop_reason = _record(ledger, breaker, row, recipient, result, outcome)
    outcome.more = ledger.settle(hold_seconds=outcome.hold_seconds)
    counts = ledger.outcomes
    outcome.sent, outcome.failed = len(counts.sent), len(counts.failed)
    outcome.skipped, outcome.released = len(counts.skipped), len(counts.released)
    if not claimed and outcome.more:
        # Rows remain but others hold them (or a dead worker's lease has yet
        # to expire): look again in a second instead of spinning.
        outcome.hold_seconds = max(outcome.hold_seconds, 1.0)
    return outcome


def _message(
    renderer: DigestRenderer,
    recipient: Recipient | None,
    row: Claimed,
    links: LinkMaker,
    ledger: CampaignLedger,
) -> Outgoing | None:
    """The row's message, or None after recording why it is skipped."""
    if recipient is None or row.reader is None:
        ledger.skipped(row.delivery_id, "unsubscribed or suppressed")
        return None
    bind = delivery_binding(ledger.campaign_id, row.subscriber_id, row.reader.token_key)
    outgoing = renderer.build(
        recipient,
        now=ledger.clock(),
        return_path=links.return_path(Purpose.BOUNCE, row.delivery_id, bind=bind),
    )
    if outgoing is None:
        ledger.skipped(row.delivery_id, "no notice of their topics")
    return outgoing


def _record(
    ledger: CampaignLedger,
    breaker: Breaker,
    row: Claimed,
    recipient: Recipient,
    result: SendResult,
    outcome: BatchOutcome,
) -> str:
    """Record the relay's answer; return why the batch must stop ("" to go on)."""
    error = result.error
    if error is None:
        ledger.sent(row.delivery_id, result.message_id)
        breaker.record(failed=False)
        return ""
    if isinstance(error, PermanentFailure):
        breaker.record(failed=False)  # an answer about the recipient, not the relay
        ledger.failed(row.delivery_id, str(error), email=recipient.email)
        return ""
    if not (
        isinstance(error, RelayUnavailable)
        or THROTTLE.match(str(error))
        or breaker.record(failed=True)
    ):
        # One recipient's 4xx (greylisting, a full mailbox) while the relay
        # is otherwise fine: retry that one later and go on with the rest.
        ledger.retry(row.delivery_id, str(error))
        return ""
    # Relay down, throttling, or failing for much of the last minute: put this
    # and the rest back and hold the whole campaign, rather than burn through
    # the list. Only a relay that said nothing spares the attempt.
    ledger.release(row.delivery_id, str(error), untried=isinstance(error, RelayUnavailable))
    hold = (
        ledger.settings.throttle_hold if THROTTLE.match(str(error)) else ledger.settings.relay_hold
    )
    outcome.hold_seconds = hold.total_seconds()
    outcome.notes.append(f"holding {outcome.hold_seconds:.0f}s after: {error}")
    return str(error)
