"""Checking and normalising an email address (email-validator)."""

from __future__ import annotations

from email_validator import EmailNotValidError, EmailUndeliverableError, validate_email

from mailer.errors import InvalidAddress

MAX_LENGTH = 254  # RFC 5321's path limit, less the angle brackets


def normalise(raw: str, *, check_deliverability: bool, timeout: float = 3.0) -> str:
    """Return the normalised address or raise InvalidAddress with a reader-fit message.

    Internationalised addresses are accepted; the transport uses SMTPUTF8 for
    them where the relay offers it. The MX look-up (check_deliverability) has
    a short timeout, and a timeout counts as deliverable: a slow DNS server
    must not turn readers away.
    """
    if len(raw) > MAX_LENGTH:
        raise InvalidAddress("That email address is too long.")
    try:
        result = validate_email(
            raw.strip(),
            check_deliverability=check_deliverability,
            timeout=max(1, round(timeout)),
            allow_display_name=False,
            strict=True,  # RFC 5321 limits, e.g. 64 octets before the @
        )
    except EmailUndeliverableError:
        raise InvalidAddress(
            "That email domain does not accept mail. Please check the address."
        ) from None
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None  # email-validator words it for readers
    # Lower-case the whole address, local part included: mailbox providers
    # treat it case-blind, and Ann@ and aNN@ must count as one address for the
    # per-address limits and the unique subscriber row.
    return result.normalized.lower()


def envelope_form(address: str) -> str:
    """The address as the SMTP envelope and To header carry it: Punycode domain where possible.

    Only a non-ASCII local part needs SMTPUTF8; an internationalised domain
    travels as its ASCII (IDNA) form, which every relay accepts.
    """
    result = validate_email(address, check_deliverability=False)
    return result.ascii_email or result.normalized
