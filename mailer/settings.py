"""Settings, read once from MAILER_* environment variables.

Every field here is a row in the README's settings table, in the same order.
A missing or malformed value raises SettingsError naming the variable, so a
misconfigured process stops at start-up instead of failing on the first mail.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from mailer import redact


class SettingsError(Exception):
    """A setting is missing or malformed. The message names the variable."""


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        scheme = raw.split(":", 1)[0].lower()
        if ":" not in raw or scheme not in schemes:
            raise ValueError(f"must be a URL starting with one of {', '.join(schemes)}")
        return raw

    return parse


def _database_url(raw: str) -> str:
    from sqlalchemy.engine import make_url

    _url("sqlite", "postgresql", "postgresql+psycopg")(raw)
    try:
        make_url(raw)
    except (ValueError, TypeError):
        # SQLAlchemy's own message quotes the URL, password and all.
        raise ValueError("is not a database URL SQLAlchemy can read (check the port)") from None
    return raw


def _base_url(raw: str) -> str:
    if not re.match(r"^https?://[^/\s]+", raw):
        raise ValueError("must be an absolute http(s) URL such as https://news.example.com")
    return raw.rstrip("/")


def _sender(raw: str) -> str:
    name, addr = parseaddr(raw)
    if "@" not in addr or "\n" in raw or "\r" in raw:
        raise ValueError('must be an address such as "Site Notices <notices@example.com>"')
    Address(display_name=name, addr_spec=addr)  # raises on what the header could not hold
    return raw


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        value = kind(raw)
        if value < 0:
            raise ValueError("must not be negative")
        return value

    return parse


def _rate_limit(raw: str) -> str:
    if not re.fullmatch(r"\s*\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?\s*", raw):
        raise ValueError("must look like 20/hour")
    return raw


def _zone(raw: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/Berlin") from None
    return raw


def _dns_name(*, dots: bool) -> Callable[[str], str]:
    label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    pattern = rf"{label}(?:\.{label})" + ("+" if dots else "*")
    example = "example.com" if dots else "mail2026"

    def parse(raw: str) -> str:
        if not re.fullmatch(pattern, raw):
            raise ValueError(f"must be a DNS name such as {example}")
        return raw.lower()

    return parse


def _bounce_mailbox(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme == "maildir":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("a Maildir must be maildir:///absolute/path")
        return raw
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError("must be maildir:///path, imap://user:pass@host/INBOX or imaps://...")
    if not (parts.hostname and parts.username and parts.password):
        raise ValueError("an IMAP mailbox needs user, password and host: imaps://u:p@host/INBOX")
    _ = parts.port  # raises ValueError for a port that is no number
    return raw


def _secret(raw: str) -> str:
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters (a shared secret others cannot guess)")
    return raw


def _optional_url(raw: str) -> str:
    return _base_url(raw) if raw else raw


def _colour(raw: str) -> str:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", raw):
        raise ValueError("must be a colour such as #1d6f8c")
    return raw.lower()


def _topics(raw: str) -> str:
    chosen = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if not chosen or set(chosen) - {"article", "video", "webinar"}:
        raise ValueError("must list topics from article, video, webinar, comma-separated")
    return ",".join(chosen)


# Values people paste from examples and tutorials; a key containing one is refused.
PLACEHOLDERS = (
    "changeme",
    "changethis",
    "replaceme",
    "yoursecret",
    "secretkeyhere",
    "notsecret",
    "insecure",
    "placeholder",
    "example",
    "default",
    "password",
    "12345678",
    "abcdefgh",
    "qwerty",
    "xxxxxxxx",
)
MIN_KEY_LENGTH = 32
MIN_BITS_PER_CHARACTER = 3.0  # a sample of 32 random hex digits scores about 3.7


def _bits_per_character(value: str) -> float:
    """The Shannon entropy of the key's own characters: low for "aaaa…" or "abab…"."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _strong_key(raw: str) -> str:
    """A signing key: 32 characters or more, varied, and none of the well-known placeholders.

    A short or guessable key lets anyone mint confirmation, preferences and
    unsubscribe links and forge console sessions.
    """
    folded = re.sub(r"[^a-z0-9]", "", raw.lower())
    if len(raw) < MIN_KEY_LENGTH:
        raise ValueError(
            f"must be at least {MIN_KEY_LENGTH} random characters; make one with "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if any(word in folded for word in PLACEHOLDERS):
        raise ValueError("looks like a placeholder from an example; use a random key")
    if _bits_per_character(raw) < MIN_BITS_PER_CHARACTER:
        raise ValueError("repeats too few characters to be random; use a random key")
    return raw


def _old_keys(raw: str) -> str:
    # Not checked for strength: moving off a weak key is what rotation is for.
    if any(not key.strip() for key in raw.split(",")):
        raise ValueError("must be one or more keys separated by commas")
    return raw


def _networks(raw: str) -> str:
    for part in raw.split(","):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise ValueError("must be addresses or networks such as 10.0.0.0/8,127.0.0.2") from None
    return raw


def _ports(raw: str) -> str:
    for part in raw.split(","):
        if not part.strip().isdigit() or not 0 < int(part) < 65536:
            raise ValueError("must be port numbers such as 8080,8443")
    return raw


def resolver_address(raw: str) -> tuple[str, int]:
    """(address, port) of a DNS server setting: 10.0.0.2, 127.0.0.1:5353, [::1]:5353, ::1."""
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port = rest.removeprefix(":")
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    else:
        host, port = raw, ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            "must be the address of a DNS server, such as 10.0.0.2 or 127.0.0.1:5353"
        ) from None
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("the port after the address must be a number")
    return host, int(port or 53)


def _resolver(raw: str) -> str:
    resolver_address(raw)


ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


def _topic_arns(raw: str) -> str:
    arns = [arn.strip() for arn in raw.split(",") if arn.strip()]
    for arn in arns:
        if not ARN.match(arn):
            raise ValueError(f"{arn!r} is no SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    return ",".join(arns)


def _sendgrid_key(raw: str) -> str:
    from mailer.bounces.providers.sendgrid import public_key

    public_key(raw)  # raises ValueError naming what is wrong
    return raw


def _user_password(raw: str) -> str:
    user, colon, password = raw.partition(":")
    if not user or not colon:
        raise ValueError("must be user:password")
    _secret(password)
    return raw


def _hour(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 23:
        raise ValueError("must be an hour from 0 to 23")
    return value


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw.lower()

    return parse


@dataclass(frozen=True)
class Settings:
    """Everything mailer reads from its environment. Tests build one directly."""

    secret_key: str
    base_url: str
    sender: str
    postal_address: str = ""  # empty: set on the console's Site settings page (CAN-SPAM)
    database_url: str = "sqlite:///var/mailer.db"
    broker_url: str = "sqla+sqlite:///var/broker.db"
    smtp_url: str = "outbox:var/outbox"
    send_rate: float = 50.0
    check_deliverability: bool = True
    deliverability_timeout: float = 3.0
    signup_limit: str = "20/hour"
    admin_login_limit: str = "10/minute"  # failed console logins per client IP, any account
    trusted_proxies: int = 0
    ratelimit_storage_url: str = ""  # empty: the broker's Redis, else in-process memory
    site_name: str = "Health Notices"
    home_url: str = ""  # the site's own home page; empty: the signup page
    logo_url: str = ""  # an image at the top of every mail and page; empty: the name alone
    brand_colour: str = "#1d6f8c"  # headers and buttons; white text must read on it
    default_topics: str = "article,video,webinar"  # ticked at signup, and the compact form's
    site_time_zone: str = "UTC"
    welcome_mail: bool = True
    default_frequency: str = "published"  # preselected at signup: published or weekly
    publish_window_minutes: float = 15.0  # notices this close together go out in one mail
    digest_weekday: str = "monday"  # the weekly digest's day ...
    digest_hour: int = 8  # ... and hour, in each subscriber's own time zone
    reminder_hours: float = 24.0  # a webinar's reminder goes this long before it starts
    block_disposable: bool = False
    captcha_provider: str = "none"
    captcha_site_key: str = ""
    captcha_secret: str = ""
    captcha_verify_url: str = ""  # empty: the provider's own siteverify URL
    form_min_seconds: float = 3.0
    form_max_age: int = 86400
    embed_origins: str = "*"
    max_body_bytes: int = 64 * 1024
    smtp_timeout: float = 30.0
    retry_backoff: float = 30.0
    retry_max: int = 8
    relay_hold: float = 30.0
    lease_seconds: float = 300.0
    throttle_hold: float = 600.0
    log_format: str = "json"
    dkim_key_file: str = ""  # empty: mail goes out unsigned
    dkim_selector: str = ""  # required with a key file
    dkim_domain: str = ""  # empty: the domain of MAILER_FROM
    bounce_mailbox: str = ""  # empty: no mailbox is read
    bounce_webhook_secret: str = ""  # empty: POST /webhooks/bounce answers 404
    ses_topic_arns: str = ""  # comma-separated; empty: POST /webhooks/ses answers 404
    sns_fetch_origin: str = ""  # empty: SNS certificates are fetched from Amazon itself
    sendgrid_webhook_key: str = ""  # empty: POST /webhooks/sendgrid answers 404
    mailgun_signing_key: str = ""  # empty: POST /webhooks/mailgun answers 404
    postmark_webhook_auth: str = ""  # user:password; empty: POST /webhooks/postmark answers 404
    secret_key_old: str = ""  # earlier keys, comma-separated: still verify, never sign
    suppression_key: str = ""  # empty: derived from the secret key (see mailer.suppression)
    preferences_link_days: float = 30.0  # a mailed preferences link works this long
    admin_idle_minutes: float = 30.0  # a console session unused this long ends
    admin_session_hours: float = 12.0  # ... and any session ends this long after login
    admin_require_2fa: bool = False  # admins must set up two-factor sign-in
    fetch_timeout: float = 10.0  # seconds for a whole feed download, redirects included
    fetch_max_bytes: int = 5 * 1024 * 1024
    fetch_allow: str = ""  # internal networks fetches may reach anyway, e.g. 10.1.2.0/24
    fetch_ports: str = ""  # ports other than 80 and 443 that fetched URLs may use
    fetch_resolver: str = ""  # DNS server for fetched hosts; empty: the system's
    metrics_token: str = ""  # bearer token a Prometheus scrape of /metrics must send
    metrics_allow: str = ""  # or the client addresses that may scrape without one
    webhook_timeout: float = 10.0  # seconds for one POST to a webhook endpoint, answer included
    webhook_retry_backoff: float = 30.0  # first retry's delay; doubles, with full jitter
    webhook_retry_for: float = 86400.0  # seconds a message is retried before it is given up

    def __post_init__(self) -> None:
        # Also for Settings built in code (tests, benchmarks): no path runs on a weak key.
        for name, check in (("secret_key", _strong_key), ("suppression_key", _strong_key)):
            value = getattr(self, name)
            if name == "secret_key" or value:
                try:
                    check(value)
                except ValueError as error:
                    raise SettingsError(f"{env_name(name)} is malformed: {error}") from None

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The key that signs, then the old ones that still verify (MAILER_SECRET_KEY_OLD)."""
        old = [key.strip() for key in self.secret_key_old.split(",") if key.strip()]
        return (self.secret_key, *old)

    @property
    def sender_domain(self) -> str:
        """The domain of the From address: Message-IDs are made under it."""
        return parseaddr(self.sender)[1].rpartition("@")[2]

    @property
    def ses_topics(self) -> tuple[str, ...]:
        return tuple(arn for arn in self.ses_topic_arns.split(",") if arn)

    @property
    def limiter_storage(self) -> str:
        """Where Flask-Limiter counts: Redis in production, memory in `make run`."""
        if self.ratelimit_storage_url:
            return self.ratelimit_storage_url
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return "memory://"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every MAILER_* variable; raise SettingsError naming the bad one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = env_name(field.name)
            raw = environ.get(name, "").strip()
            if not raw:
                if field.default is field.default_factory:  # both MISSING: required
                    raise SettingsError(f"{name} is not set (required)")
                continue
            try:
                values[field.name] = PARSERS.get(field.name, str)(raw)
            except ValueError as error:
                raise SettingsError(
                    f"{name} is malformed: {error}{_shown(field.name, raw)}"
                ) from None
        return cls(**values)


def env_name(field: str) -> str:
    """The environment variable of a Settings field."""
    return "MAILER_" + ("FROM" if field == "sender" else field.upper())


# Never echoed in an error: the whole value is the secret.
SECRETS = frozenset(
    {
        "secret_key",
        "secret_key_old",
        "suppression_key",
        "captcha_secret",
        "bounce_webhook_secret",
        "mailgun_signing_key",
        "postmark_webhook_auth",
    }
)
# Echoed without the user and password they may carry.
URLS = frozenset(
    {
        "database_url",
        "broker_url",
        "smtp_url",
        "ratelimit_storage_url",
        "bounce_mailbox",
        "captcha_verify_url",
        "sns_fetch_origin",
    }
)


def _shown(field: str, raw: str) -> str:
    """What a malformed setting's message may quote of its value (error messages reach logs)."""
    if field in SECRETS:
        return " (value not shown)"
    return f" (got {(redact.url(raw) if field in URLS else raw)[:200]!r})"


PARSERS: dict[str, Callable[[str], Any]] = {
    "base_url": _base_url,
    "sender": _sender,
    "database_url": _database_url,
    "broker_url": _url("redis", "rediss", "sqla+sqlite", "sqla+postgresql", "amqp", "memory"),
    "smtp_url": _url("smtp", "smtps", "outbox"),
    "send_rate": _positive(float),
    "check_deliverability": _flag,
    "deliverability_timeout": _positive(float),
    "signup_limit": _rate_limit,
    "admin_login_limit": _rate_limit,
    "trusted_proxies": _positive(int),
    "home_url": _optional_url,
    "logo_url": _optional_url,
    "brand_colour": _colour,
    "default_topics": _topics,
    "welcome_mail": _flag,
    "default_frequency": _choice("published", "weekly"),
    "publish_window_minutes": _positive(float),
    "digest_weekday": _choice(*WEEKDAYS),
    "digest_hour": _hour,
    "reminder_hours": _positive(float),
    "block_disposable": _flag,
    "captcha_provider": _choice("none", "turnstile", "hcaptcha"),
    "captcha_verify_url": _url("https", "http"),
    "form_min_seconds": _positive(float),
    "form_max_age": _positive(int),
    "max_body_bytes": _positive(int),
    "smtp_timeout": _positive(float),
    "retry_backoff": _positive(float),
    "retry_max": _positive(int),
    "relay_hold": _positive(float),
    "lease_seconds": _positive(float),
    "throttle_hold": _positive(float),
    "log_format": _choice("json", "text"),
    "site_time_zone": _zone,
    "dkim_selector": _dns_name(dots=False),
    "dkim_domain": _dns_name(dots=True),
    "bounce_mailbox": _bounce_mailbox,
    "bounce_webhook_secret": _secret,
    "secret_key": _strong_key,
    "secret_key_old": _old_keys,
    "suppression_key": _strong_key,
    "preferences_link_days": _positive(float),
    "admin_idle_minutes": _positive(float),
    "admin_session_hours": _positive(float),
    "admin_require_2fa": _flag,
    "fetch_timeout": _positive(float),
    "fetch_max_bytes": _positive(int),
    "fetch_allow": _networks,
    "fetch_ports": _ports,
    "fetch_resolver": _resolver,
    "metrics_token": _secret,
    "metrics_allow": _networks,
    "webhook_timeout": _positive(float),
    "webhook_retry_backoff": _positive(float),
    "webhook_retry_for": _positive(float),
    "ses_topic_arns": _topic_arns,
    "sns_fetch_origin": _url("https", "http"),
    "sendgrid_webhook_key": _sendgrid_key,
    "mailgun_signing_key": _secret,
    "postmark_webhook_auth": _user_password,
}
