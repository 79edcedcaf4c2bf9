"""One message from the bounce mailbox: read it, apply it in its own transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailer import tokens
from mailer.bounces import applying, detection, mime
from mailer.bounces.report import Kind, MalformedReport, Outcome, Report

log = logging.getLogger("mailer.bounces")


def read(raw: bytes, *, envelope_to: str = "") -> Report:
    """What one message says; MalformedReport when it cannot be read at all."""
    message = mime.load(raw)
    text = raw[: applying.MAX_RAW].decode("utf-8", errors="replace")
    envelope = mime.envelope(message, envelope_to)
    if envelope.unsubscribe_tokens:
        # Whatever it says: mail to the List-Unsubscribe mailto asks to leave.
        return Report(Kind.UNSUBSCRIBE, envelope=envelope, raw=text)
    try:
        kind, failures, recipient, diagnostic = detection.understand(message)
        quoted = mime.quoted(message)
    except RecursionError:
        raise MalformedReport("nested too deeply to read") from None
    return Report(kind, failures, envelope, quoted, recipient, diagnostic, raw=text)


def process_message(
    factory: sessionmaker[Session],
    raw: bytes,
    *,
    secret_key: tokens.Keys,
    clock: Callable[[], datetime],
    envelope_to: str = "",
    label: str = "",
) -> Outcome:
    """Read and apply one incoming message in its own transaction; never raise for bad input.

    Database trouble does raise: the message is then left for the next run.
    Anything else one message sets off is its own problem: it is logged and
    the message kept for a person, so it cannot hold up the rest of the mailbox.
    """
    try:
        report = read(raw, envelope_to=envelope_to)
    except MalformedReport as error:
        log.warning("bounce mailbox: kept malformed message %s for a person: %s", label, error)
        return Outcome.MALFORMED
    except Exception:
        log.exception("bounce mailbox: kept message %s for a person: it could not be read", label)
        return Outcome.MALFORMED
    with factory() as session:
        try:
            outcome = applying.apply(session, report, secret_key=secret_key, now=clock())
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            session.rollback()
            log.exception("bounce mailbox: kept message %s: it could not be applied", label)
            return Outcome.MALFORMED
        session.commit()
    if outcome is Outcome.FORGED:
        log.warning("bounce mailbox: message %s names a token that does not verify", label)
    log.info("bounce mailbox: message %s: %s", label, outcome)
    return outcome
