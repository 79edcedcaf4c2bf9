"""The two standard report formats, read for what the detectors leave out.

RFC 3464 delivery status notifications give each recipient an enhanced
status code and the remote server's answer, which the console shows;
RFC 5965 feedback reports say what kind of complaint it is. Both are read
forgivingly: the report may sit one level down (a DSN forwarded inside
multipart/mixed or message/rfc822), `report-type` may be missing, and
Action and Status may carry comments or be non-standard ("Action: failed
(bad destination mailbox address)", "Action: error", "Status: 5.1.1 (unknown
user)").
"""

from __future__ import annotations

import re
from email.message import Message

from mailer.bounces import mime
from mailer.bounces.report import Failure, Severity, clean

ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_REPLY = re.compile(r"\b([245])\d\d\b")
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
DELIVERY_STATUS = ("message/delivery-status", "message/global-delivery-status")
# Feedback types that are no complaint from the person who got the mail:
# "not-spam" takes one back, "auth-failure" and "dmarc" report someone
# forging our domain.
NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure", "dmarc"})


def address(value: object) -> str:
    """`rfc822; Ann@Example.org` -> `ann@example.org`; "" when it is no usable address."""
    text = str(value or "").strip()
    if ";" in text:
        text = text.split(";", 1)[1]
    text = text.strip().strip("<>").strip().lower()
    return text if len(text) <= 320 and ADDRESS.match(text) else ""


def status_code(*texts: str) -> str:
    """The first enhanced status code in `texts`, else one made from an SMTP reply code."""
    for text in texts:
        if match := ENHANCED_STATUS.search(text):
            return match.group(0)
    for text in texts:
        if match := SMTP_REPLY.search(text):
            return f"{match.group(1)}.0.0"
    return ""


def _failure(block: Message) -> Failure | None:
    action = str(block.get("Action", "")).strip().lower()
    if action.startswith("delay"):
        severity = Severity.SOFT  # a warning: it is still being tried
    elif action.startswith(("fail", "error")):  # opensmtpd writes "error"
        severity = Severity.HARD
    else:
        return None  # delivered, relayed, expanded, or no Action: nothing failed
    diagnostic_code = str(block.get("Diagnostic-Code", "")).strip()
    answer = diagnostic_code.split(";", 1)[1] if ";" in diagnostic_code else diagnostic_code
    status = status_code(str(block.get("Status", "")), answer)
    # "failed" with a 4.x.x status gave up on a temporary problem (a full mailbox).
    if severity is Severity.HARD and status.startswith("4"):
        severity = Severity.SOFT
    recipient = (
        address(block.get("Original-Recipient"))
        or address(block.get("Final-Recipient"))
        or address(block.get("X-Actual-Recipient"))
    )
    return Failure(recipient, severity, status, clean(f"{status} {answer}".strip()))


def delivery_status(message: Message) -> tuple[Failure, ...] | None:
    """Every failed or delayed recipient of a DSN; None when the message holds no DSN."""
    part = mime.find_part(message, *DELIVERY_STATUS)
    if part is None:
        return None
    # The first block is about the message (Reporting-MTA); the others each about a recipient.
    failures = (_failure(block) for block in mime.header_blocks(part))
    return tuple(failure for failure in failures if failure is not None)


def feedback(message: Message) -> tuple[str, str] | None:
    """(feedback type, Original-Rcpt-To) of an ARF report; None when there is none."""
    part = mime.find_part(message, "message/feedback-report")
    if part is None:
        return None
    fields: dict[str, str] = {}
    for block in mime.header_blocks(part):
        for key, value in block.items():
            fields.setdefault(key.lower(), str(value))
    feedback_type = clean(fields.get("feedback-type", ""), 40).lower() or "abuse"
    return feedback_type, address(fields.get("original-rcpt-to"))
