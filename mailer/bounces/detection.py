"""What a message in the bounce mailbox is: a bounce (and for whom), a complaint, or neither.

flufl.bounce (GNU Mailman's detector) knows the proprietary formats that
decades of MTAs have sent (qmail, Exim, Postfix's old text, Exchange,
Yahoo, GroupWise, ...) and says which recipients failed permanently and
which temporarily. The standard formats are also read strictly
(mailer.bounces.standard) for the status code and diagnostic the console
shows. A message neither understands is checked for the marks of an
auto-reply (RFC 3834 and the usual non-standard headers and subjects).
"""

from __future__ import annotations

import logging
import re
from email.message import Message

from flufl.bounce import all_failures

from mailer.bounces import mime, standard
from mailer.bounces.report import Failure, Kind, Severity, clean

log = logging.getLogger("mailer.bounces")

# A warning says delivery goes on; these phrases are what MTAs write in one.
WARNING = re.compile(
    r"will (?:be )?retr(?:y|ied)|will (?:keep|continue) (?:on )?try|still (?:being )?"
    r"(?:retried|trying)|warning (?:message )?only|not yet been delivered|has been delayed"
    r"|delivery (?:is )?delayed|message delayed|\(delay\)",
    re.I,
)
# ... and these what they write when they have given up, which wins.
GAVE_UP = re.compile(
    r"not going to try again|retry time(?:out)? (?:exceeded|reached)|giving up|gave up"
    r"|permanent(?:ly)? fail|will not (?:be )?retr|won'?t retry|could not be delivered",
    re.I,
)
AUTO_REPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response|antwort)"
    r"|autoreply|vacation|abwesenheit|absence|away from (?:the|my) office|on leave"
    r"|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica",
    re.I,
)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery|failure|failed|returned mail|not delivered|bounce|rejected", re.I
)
DAEMON_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery", re.I)
# A line with an enhanced status code, else one where a server's reply code
# starts the answer ("said: 550 ...", "<ann@...>: 550 ...", "552 Message ...").
ENHANCED_LINE = re.compile(r"^.*\b[45]\.\d{1,3}\.\d{1,3}\b.*$", re.M)
REPLY_LINE = re.compile(
    r"^(?:.*(?:said|replied|returned):|.*>:|[\s\"'>*(\[-]*)\s*[45]\d\d[ -]\S.*$", re.M
)


def understand(message: Message) -> tuple[Kind, tuple[Failure, ...], str, str]:
    """(kind, failures, recipient named, diagnostic) of one message."""
    complaint = standard.feedback(message)
    if complaint is not None:
        feedback_type, recipient = complaint
        kind = Kind.NO_FAILURE if feedback_type in standard.NOT_COMPLAINTS else Kind.COMPLAINT
        return kind, (), recipient, clean(f"feedback {feedback_type}")
    strict = standard.delivery_status(message)
    if strict:
        return Kind.BOUNCE, strict, "", ""
    detected = _detected(message)
    if detected:
        return Kind.BOUNCE, detected, "", ""
    if strict is not None:  # a DSN that reports only deliveries
        return Kind.NO_FAILURE, (), "", ""
    if is_auto_reply(message):
        return Kind.AUTO_REPLY, (), "", ""
    return Kind.UNRECOGNISED, (), "", ""


def _detected(message: Message) -> tuple[Failure, ...]:
    """What flufl.bounce finds, with a status and diagnostic dug out of the text."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over odd input must not lose the message
        log.warning("flufl.bounce failed on a message; reading it without", exc_info=True)
        return ()
    if not (temporary or permanent):
        return ()
    text = _own_text(message)
    warning = WARNING.search(f"{message.get('Subject', '')}\n{text}") and not GAVE_UP.search(text)
    line = ENHANCED_LINE.search(text) or REPLY_LINE.search(text)
    diagnostic = clean(line.group(0)) if line else ""
    status = standard.status_code(diagnostic)
    failures = []
    for found, severity in ((permanent, Severity.HARD), (temporary, Severity.SOFT)):
        if warning or status.startswith("4"):
            severity = Severity.SOFT  # a warning never counts as hard
        for raw in sorted(found):
            recipient = standard.address(raw.decode("ascii", errors="replace"))
            failures.append(Failure(recipient, severity, status, diagnostic))
    return tuple(failures)


def _own_text(message: Message) -> str:
    """The report's own words: its text parts, not those of a mail it quotes."""
    texts, stack = [], [(message, 0)]
    while stack:
        part, depth = stack.pop()
        payload = part.get_payload()
        if isinstance(payload, list):
            if part.get_content_maintype() == "multipart" and depth < mime.SEARCH_DEPTH:
                stack.extend((child, depth + 1) for child in reversed(payload))
        elif part.get_content_maintype() == "text" and "headers" not in part.get_content_type():
            texts.append(mime.decoded_text(part, 64 * 1024))
    return "\n".join(texts)


def is_auto_reply(message: Message) -> bool:
    """Out of office and the like (RFC 3834 and the usual non-standard marks)."""
    subject = str(message.get("Subject", ""))
    sender = str(message.get("From", ""))
    if DAEMON_SENDER.search(sender) or (
        BOUNCE_SUBJECT.search(subject) and not AUTO_REPLY_SUBJECT.search(subject)
    ):
        return False  # a bounce nobody could read, not an auto-reply
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return bool(
        not auto_submitted.startswith("no")
        or message.get("X-Autoreply")
        or message.get("X-Autorespond")
        or precedence in ("auto_reply", "auto-reply")
        or AUTO_REPLY_SUBJECT.search(subject)
    )
