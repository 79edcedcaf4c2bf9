"""Checks that keep bots and subscription bombers out, shared by every signup entry point.

None of these tell the sender which check tripped: the caller answers a
refusal exactly as it answers a success, and only the log says why.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from mailer.errors import CaptchaUnavailable
from mailer.models import MailKind, Suppression, TransactionalMail
from mailer.suppression import LIFTED_BY_OPT_IN, address_hashes

# No address gets more than one confirmation-type mail an hour, three a day,
# whatever the source: 20 signups for a victim's address from 20 IPs make one mail.
MAILS_PER_HOUR = 1
MAILS_PER_DAY = 3
LIMITED_KINDS = (
    MailKind.CONFIRM,
    MailKind.ALREADY_SUBSCRIBED,
    MailKind.ADDRESS_CHANGE,
    MailKind.PREFERENCES_LINK,
)

CAPTCHA_VERIFY_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a form submission is refused, or None when it may go on."""

    reason: str | None = None

    @property
    def refused(self) -> bool:
        return self.reason is not None


def _stamp_serializer(secret_key: str | Sequence[str]) -> URLSafeSerializer:
    # Newest key first (Settings.secret_keys); itsdangerous signs with the last of its list.
    keys = [secret_key] if isinstance(secret_key, str) else list(reversed(secret_key))
    return URLSafeSerializer(keys, salt="mailer.form-stamp")


def make_stamp(secret_key: str | Sequence[str], *, now: datetime) -> str:
    """A signed record of when the form was shown, for the hidden `stamp` field."""
    return _stamp_serializer(secret_key).dumps(round(now.timestamp(), 3))


def check_form(
    secret_key: str | Sequence[str],
    *,
    honeypot: str,
    stamp: str,
    now: datetime,
    min_seconds: float,
    max_age: float,
) -> Verdict:
    """Refuse a filled honeypot, a forged stamp, or a form sent too fast or too late."""
    if honeypot:
        return Verdict("honeypot filled")
    try:
        shown_at = float(_stamp_serializer(secret_key).loads(stamp))
    except (BadSignature, TypeError, ValueError):
        return Verdict("form stamp missing or forged")
    age = now.timestamp() - shown_at
    if age < min_seconds:
        return Verdict(f"sent {age:.1f}s after the form was shown")
    if age > max_age:
        return Verdict(f"form stale ({age:.0f}s old)")
    return Verdict()


def check_domain(email: str, *, block_disposable: bool) -> Verdict:
    """Refuse throw-away mailbox domains when the site asks for it."""
    domain = email.rpartition("@")[2].lower()
    if block_disposable and domain in DISPOSABLE_DOMAINS:
        return Verdict(f"disposable domain {domain}")
    return Verdict()


def _address_limits_query():
    mails = select(func.count()).where(
        TransactionalMail.email == bindparam("email"), TransactionalMail.kind.in_(LIMITED_KINDS)
    )
    return select(
        select(Suppression.reason)
        .where(
            Suppression.email_hash.in_(bindparam("email_hashes", expanding=True)),
            # Whoever unsubscribed or was erased may come back through the form.
            Suppression.reason.not_in(sorted(LIFTED_BY_OPT_IN)),
        )
        .limit(1)
        .scalar_subquery(),
        mails.where(TransactionalMail.created_at > bindparam("hour_ago")).scalar_subquery(),
        mails.where(TransactionalMail.created_at > bindparam("day_ago")).scalar_subquery(),
    )


ADDRESS_LIMITS = _address_limits_query()  # built once: this runs on every signup


def check_address_limits(session: Session, email: str, *, now: datetime) -> Verdict:
    """Refuse a further confirmation-type mail to `email` (suppressed, or over the limits)."""
    reason, last_hour, last_day = session.execute(
        ADDRESS_LIMITS,
        {
            "email": email,
            "email_hashes": address_hashes(session, email),
            "hour_ago": now - timedelta(hours=1),
            "day_ago": now - timedelta(days=1),
        },
    ).one()
    if reason is not None:
        return Verdict(f"address suppressed ({reason})")
    if last_hour >= MAILS_PER_HOUR:
        return Verdict("address had a mail in the last hour")
    if last_day >= MAILS_PER_DAY:
        return Verdict("address had three mails in the last day")
    return Verdict()


def verify_captcha(
    provider: str, *, secret: str, response: str, remote_ip: str, url: str = "", timeout: float = 5
) -> Verdict:
    """Ask Turnstile or hCaptcha whether `response` is a solved challenge.

    Both take the same form-encoded siteverify POST and answer {"success": bool}.
    A service that does not answer raises CaptchaUnavailable: signups fail
    closed rather than let bots through while it is down.
    """
    if provider == "none":
        return Verdict()
    if not response:
        return Verdict("captcha not solved")
    body = urllib.parse.urlencode({"secret": secret, "response": response, "remoteip": remote_ip})
    request = urllib.request.Request(  # noqa: S310 - see urlopen below
        url or CAPTCHA_VERIFY_URLS[provider], data=body.encode()
    )
    try:
        # The provider's fixed https URL, or MAILER_CAPTCHA_VERIFY_URL, which the
        # settings only take as http(s): no file:// or other scheme reaches this.
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            result = json.load(answer)
    except (OSError, ValueError) as error:
        raise CaptchaUnavailable(f"{provider} siteverify failed: {error}") from error
    if result.get("success") is True:
        return Verdict()
    return Verdict(f"captcha rejected: {result.get('error-codes', [])}")
