"""Reading hostile mail safely: a size cap, a bounded walk over the MIME tree, forgiving text.

Anyone can write to the bounce address, so every message is taken as an
attack until read: it is refused when too large or too deeply nested (the
email package and the detectors recurse), and text is decoded whatever
charset it claims.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser

from mailer.bounces.report import Evidence, MalformedReport

MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # a report quoting one of our mails is far smaller
# What is read of a message: a report's own words, the status part and the
# headers of the mail it quotes come first. The detectors' cost grows with
# the lines they scan (about 0.3 s for 128 KiB of hostile one-word lines).
READ_BYTES = 128 * 1024
MAX_NESTING = 12  # levels of multipart and message/rfc822 one message may have
MAX_PARTS = 500
MAX_TEXT = 256 * 1024  # of text read for heuristics, per message
SEARCH_DEPTH = 4  # a report nested one level inside multipart/mixed or message/rfc822

# Where a report says whom it is for: the envelope recipient the mailbox was
# given, then what the receiving MTA wrote down, then the header.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")
QUOTED_HEADERS = ("Return-Path", "List-Unsubscribe", "To", "Delivered-To", "X-Original-To")
# Any bounce+ or unsubscribe+ local part, whatever follows the plus: a token
# that does not have our shape is a forgery, not something to look past.
CLAIMED_TOKEN = re.compile(r"(?:^|[\s<,:;\"'(])(bounce|unsubscribe)\+([^@\s<>,;\"']{0,200})@", re.I)
MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{3,250}>)", re.I | re.M)
MESSAGE_ID = re.compile(r"<[^<>\s]{3,250}>")
MAX_MESSAGE_IDS = 10


def load(raw: bytes) -> Message:
    """The parsed message, or MalformedReport saying why it cannot be read."""
    if not raw.strip():
        raise MalformedReport("an empty message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedReport(f"{len(raw)} bytes, more than a report is ({MAX_MESSAGE_BYTES})")
    try:
        message = message_from_bytes(raw[:READ_BYTES], policy=policy.compat32)
    except Exception as error:  # the email package has many ways to fail on junk
        raise MalformedReport(f"unreadable: {type(error).__name__}: {error}") from None
    _check_shape(message)
    return message


def _check_shape(message: Message) -> None:
    parts, stack = 0, [(message, 0)]
    while stack:
        part, depth = stack.pop()
        parts += 1
        if depth > MAX_NESTING or parts > MAX_PARTS:
            raise MalformedReport(
                f"nested deeper than {MAX_NESTING} levels or more than {MAX_PARTS} parts"
            )
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    if message.defects and not message.keys():
        raise MalformedReport(f"no headers: {message.defects[0]!r}")


def walk(message: Message, max_depth: int = SEARCH_DEPTH) -> Iterator[tuple[int, Message]]:
    """(depth, part) of every part down to `max_depth`, in document order."""
    stack = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        yield depth, part
        payload = part.get_payload()
        if depth < max_depth and isinstance(payload, list):
            children = [child for child in payload if isinstance(child, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))


def find_part(message: Message, *content_types: str) -> Message | None:
    """The first part of one of `content_types`, at the top or nested within reach."""
    for _depth, part in walk(message):
        if part.get_content_type() in content_types:
            return part
    return None


def decoded_text(part: Message, limit: int = MAX_TEXT) -> str:
    """A leaf part's text, decoded by its charset when Python knows it, else as Latin-1."""
    body = part.get_payload(decode=True)
    if not isinstance(body, bytes):
        return ""
    body = body[:limit]
    charset = part.get_content_charset() or "us-ascii"
    try:
        return body.decode(charset, errors="replace")
    except (LookupError, ValueError):  # a made-up or unsupported charset
        return body.decode("latin-1")


def header_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = decoded_text(part)
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", text.strip())]


def header_values(message: Message, names: tuple[str, ...]) -> list[str]:
    values = []
    for name in names:
        for value in message.get_all(name) or ():
            values.append(str(value))
    return values


def claimed_tokens(values: list[str], prefix: str) -> tuple[str, ...]:
    """What follows `prefix+` in each address among `values`, lower-cased, each once."""
    found = []
    for value in values:
        for match in CLAIMED_TOKEN.finditer(value):
            if match.group(1).lower() == prefix:
                found.append(match.group(2).lower())
    return tuple(dict.fromkeys(found))


def envelope(message: Message, envelope_to: str = "") -> Evidence:
    """The tokens in the addresses the message was delivered to."""
    values = [envelope_to, *header_values(message, RECIPIENT_HEADERS)]
    return Evidence(claimed_tokens(values, "bounce"), claimed_tokens(values, "unsubscribe"))


def quoted(message: Message) -> Evidence:
    """Tokens and Message-IDs the report quotes from the mail it is about.

    From the original's headers (message/rfc822, text/rfc822-headers), from
    an original quoted inline as text (qmail, Exim), and from the report's own
    In-Reply-To and References.
    """
    values = header_values(message, ("In-Reply-To", "References"))
    message_ids = [found for value in values for found in MESSAGE_ID.findall(value)]
    texts: list[str] = []
    for depth, part in walk(message):
        kind = part.get_content_type()
        if depth and kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            for original in payload if isinstance(payload, list) else ():
                values += header_values(original, QUOTED_HEADERS)
                message_ids += MESSAGE_ID.findall(str(original.get("Message-ID", "")))
        elif kind.startswith("text/") and not part.is_multipart():
            texts.append(decoded_text(part))
    text = "\n".join(texts)[:MAX_TEXT]
    message_ids += MESSAGE_ID_LINE.findall(text)
    values.append(text)
    return Evidence(
        claimed_tokens(values, "bounce"),
        claimed_tokens(values, "unsubscribe"),
        tuple(dict.fromkeys(message_ids))[:MAX_MESSAGE_IDS],
    )
