"""Database tables. Behaviour lives in the domain modules, not here."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names keep Alembic diffs and downgrades predictable.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True)}


class Topic(enum.StrEnum):
    ARTICLE = "article"
    VIDEO = "video"
    WEBINAR = "webinar"


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # signed up, not yet confirmed: gets no list mail
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class Frequency(enum.StrEnum):
    PUBLISHED = "published"  # each notice as it is published
    WEEKLY = "weekly"  # one digest a week


class MailKind(enum.StrEnum):
    """Transactional mails, one template pair each under templates/email/."""

    CONFIRM = "confirm"
    ALREADY_SUBSCRIBED = "already_subscribed"
    WELCOME = "welcome"
    ADDRESS_CHANGE = "address_change"  # confirm a new address from the preferences page
    PREFERENCES_LINK = "preferences_link"  # "email me a link" from the site
    ADDRESS_CHANGED = "address_changed"  # to the old address, with a link to undo the move


class MailStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


def new_token_key() -> str:
    """A row's random token key: what its link tokens are bound to (see mailer.tokens)."""
    return secrets.token_hex(16)


def _enum(kind: type[enum.StrEnum]) -> String:
    # Plain strings in the database: adding a value needs no ALTER TYPE.
    return String(max(len(member.value) for member in kind))


class Subscriber(Base):
    """One reader, by normalised address."""

    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(_enum(SubscriberStatus), default=SubscriberStatus.PENDING)
    created_at: Mapped[datetime]
    last_signup_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None] = mapped_column(index=True)  # dashboard: per day
    unsubscribed_at: Mapped[datetime | None]
    time_zone: Mapped[str] = mapped_column(String(64), default="")  # IANA name; "" = site's
    frequency: Mapped[str] = mapped_column(_enum(Frequency), default=Frequency.PUBLISHED)
    # Withdrawal of consent (GDPR Art. 7(3)): how, and from which campaign's mail.
    unsubscribe_channel: Mapped[str] = mapped_column(String(20), default="")
    # Indexed: the dashboard counts the unsubscribes each campaign's mail brought.
    unsubscribed_campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True
    )
    # Soft bounces in a row; the third suppresses the address, a delivered mail resets it.
    soft_bounces: Mapped[int] = mapped_column(default=0)
    # Every link token naming this subscriber is bound to it; a new key (erase,
    # new address, "forget my links") voids them all. "" for rows from before 0010.
    token_key: Mapped[str] = mapped_column(String(32), default=new_token_key)

    topics: Mapped[list[SubscriberTopic]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_subscriber_status_created_at", "status", "created_at"),
        # The admin console's search (mailer.subscriber_search): a state filter
        # walks this in id order, and trigram indexes answer substring searches
        # of address and name on PostgreSQL (plain indexes on SQLite).
        Index("ix_subscriber_status_id", "status", "id"),
        Index(
            "ix_subscriber_email_trgm",
            "email",
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
        ),
        Index(
            "ix_subscriber_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    @property
    def topic_names(self) -> list[str]:
        """The topics in the site's order (article, video, webinar)."""
        chosen = {row.topic for row in self.topics}
        return [topic.value for topic in Topic if topic.value in chosen]


class SubscriberTopic(Base):
    """A topic a confirmed subscriber hears about."""

    __tablename__ = "subscriber_topic"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(_enum(Topic), primary_key=True)

    __table_args__ = (Index("ix_subscriber_topic_topic", "topic"),)


class Consent(Base):
    """Proof of one signup request and, once confirmed, of the consent (GDPR Art. 7(1))."""

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    requested_at: Mapped[datetime]
    ip: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    form: Mapped[str] = mapped_column(String(40))  # which form: "page" or "embed"
    source_url: Mapped[str] = mapped_column(String(2048), default="")
    wording: Mapped[str] = mapped_column(Text)  # the exact consent text shown
    topics: Mapped[str] = mapped_column(String(100))  # comma-separated, applied on confirm
    frequency: Mapped[str] = mapped_column(_enum(Frequency), default=Frequency.PUBLISHED)
    confirmed_at: Mapped[datetime | None]
    confirmed_ip: Mapped[str | None] = mapped_column(String(45))
    # The confirm and "this wasn't me" links are bound to this very request.
    token_key: Mapped[str] = mapped_column(String(32), default=new_token_key)

    @property
    def topic_list(self) -> list[str]:
        return [topic for topic in self.topics.split(",") if topic]


class TransactionalMail(Base):
    """A confirmation, welcome or notice mail: queued here first, then sent by a worker.

    Counting these rows per address is what limits subscription bombing,
    whatever IP the signups come from.
    """

    __tablename__ = "transactional_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="SET NULL"), index=True
    )
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consent.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(_enum(MailKind))
    status: Mapped[str] = mapped_column(_enum(MailStatus), default=MailStatus.QUEUED)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    message_id: Mapped[str] = mapped_column(String(255), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_transactional_mail_email_created_at", "email", "created_at"),
        # A bounce report that quotes our Message-ID finds its mail by it.
        Index(
            "ix_transactional_mail_message_id",
            "message_id",
            postgresql_where=text("message_id <> ''"),
            sqlite_where=text("message_id <> ''"),
        ),
    )


class SuppressionReason(enum.StrEnum):
    NOT_ME = "not_me"  # "this wasn't me" on a confirmation mail
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"  # three soft bounces in a row
    COMPLAINT = "complaint"  # marked as spam (ARF report)
    ERASED = "erased"  # personal data erased on request: only the hash is kept
    ADMIN = "admin"


class Suppression(Base):
    """An address that must get no further list mail; see mailer.suppression."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL once erased: then only the keyed hash of the address remains.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)  # suppression.address_hash
    reason: Mapped[str] = mapped_column(_enum(SuppressionReason))
    created_at: Mapped[datetime]


class NoticeKind(enum.StrEnum):
    ARTICLE = "article"
    VIDEO = "video"
    WEBINAR = "webinar"


class Notice(Base):
    """A new article, video or webinar on the site, to be announced."""

    __tablename__ = "notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(_enum(NoticeKind), index=True)
    title: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(String(2048))
    summary: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str] = mapped_column(String(2048), default="")
    # What the image shows, for readers who cannot see it; empty: the title stands in.
    image_alt: Mapped[str] = mapped_column(String(300), default="", server_default="")
    published_at: Mapped[datetime] = mapped_column(index=True)
    # Webinars only: when, for how long, in which zone it is announced, where to join.
    starts_at: Mapped[datetime | None]
    duration_minutes: Mapped[int | None]
    time_zone: Mapped[str] = mapped_column(String(64), default="")
    join_url: Mapped[str] = mapped_column(String(2048), default="")
    source: Mapped[str] = mapped_column(String(20))  # admin, cli, api, feed
    guid: Mapped[str | None] = mapped_column(String(2048), unique=True)  # feed entry id
    created_at: Mapped[datetime]
    # From a plain-http feed or one marked "review": no automatic send until approved.
    held_for_review: Mapped[bool] = mapped_column(default=False, server_default=text("false"))


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FINISHED = "finished"


class CampaignKind(enum.StrEnum):
    MANUAL = "manual"  # composed and started by an editor
    PUBLISHED = "published"  # automatic: the notices of one publishing window
    WEEKLY = "weekly"  # automatic: the weekly digest
    REMINDER = "reminder"  # automatic: a webinar starts soon


class Campaign(Base):
    """A digest of notices sent once to every confirmed subscriber of its topics."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str] = mapped_column(Text, default="")
    topics: Mapped[str] = mapped_column(String(100))  # comma-separated audience
    status: Mapped[str] = mapped_column(_enum(CampaignStatus), default=CampaignStatus.DRAFT)
    send_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Set when the relay is down or throttling (e.g. Gmail's 4.7.28): every
    # worker waits until then, so the whole campaign slows, not one message.
    hold_until: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(
        _enum(CampaignKind), default=CampaignKind.MANUAL, server_default=CampaignKind.MANUAL.value
    )
    # Automatic sends only: which one this is ("weekly:2026-W48", "reminder:12").
    # Unique, so a beat tick run twice cannot make a second campaign.
    slot: Mapped[str | None] = mapped_column(String(80), index=True, unique=True)

    @property
    def topic_list(self) -> list[str]:
        return [topic for topic in self.topics.split(",") if topic]


class CampaignNotice(Base):
    __tablename__ = "campaign_notice"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True
    )
    notice_id: Mapped[int] = mapped_column(ForeignKey("notice.id"), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"  # leased by a worker until lease_until
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing for this reader (no notice of their topics), or left
    BOUNCED = "bounced"  # accepted by the relay, then reported undeliverable (DSN)


class Delivery(Base):
    """One campaign to one subscriber. The unique pair makes a second send impossible.

    No foreign keys on purpose: their per-row checks were half the cost of
    planning a million deliveries (bench/README.md). The rows are only ever
    created by campaigns.start_campaign from existing subscribers of a locked
    campaign, and deleted by campaigns.delete_campaign and
    privacy.erase_subscriber, which remove them explicitly.
    """

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int]
    subscriber_id: Mapped[int]
    status: Mapped[str] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str] = mapped_column(String(255), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Automatic sends choose each reader's notices when planning: their ids,
    # comma-separated ("" = the campaign's notices), and the moment up to which
    # notices were considered, where that reader's next automatic mail starts.
    notice_ids: Mapped[str] = mapped_column(Text, default="", server_default="")
    notices_until: Mapped[datetime | None]

    __table_args__ = (
        # Also what progress counts walk: a (campaign_id, status) index cost a
        # tenth of planning and went unused while a campaign sends.
        UniqueConstraint("campaign_id", "subscriber_id"),
        # What claim_batch walks, one index per query: the queue in id order, and
        # leases by expiry. Sent rows leave both (their old entries stay until VACUUM).
        Index(
            "ix_delivery_queued",
            "campaign_id",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_delivery_claimed",
            "campaign_id",
            "lease_until",
            postgresql_where=text("status = 'claimed'"),
            sqlite_where=text("status = 'claimed'"),
        ),
        Index("ix_delivery_subscriber_id", "subscriber_id"),  # export, erasure, history
        # A bounce report that quotes our Message-ID finds its delivery by it;
        # rows not yet sent have none and stay out of the index.
        Index(
            "ix_delivery_message_id",
            "message_id",
            postgresql_where=text("message_id <> ''"),
            sqlite_where=text("message_id <> ''"),
        ),
        # Where a reader's last automatic mail left off (mailer.automatic): one
        # probe per reader. Editors' campaigns leave notices_until empty: no entries.
        Index(
            "ix_delivery_reader_notices",
            "subscriber_id",
            "notices_until",
            postgresql_where=text("notices_until IS NOT NULL"),
            sqlite_where=text("notices_until IS NOT NULL"),
        ),
    )


class AutomaticSending(Base):
    """The one row (id 1) that switches automatic sends off and on, and their cursor."""

    __tablename__ = "automatic_sending"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    paused: Mapped[bool] = mapped_column(default=False)
    changed_at: Mapped[datetime | None]
    changed_by: Mapped[str] = mapped_column(String(320), default="")
    # Set when automatic sends arrive on a list that already has notices: only
    # notices created from then on are sent, not the archive.
    notices_since: Mapped[datetime | None]
    # Notices created before this went into an "as published" window already.
    published_until: Mapped[datetime | None]
    # Automatic campaigns the global pause stopped: resume restarts just these.
    held_campaign_ids: Mapped[str] = mapped_column(Text, default="")


class SiteSetting(Base):
    """The one row (id 1) of site settings changed in the console; NULL: the MAILER_* default.

    `version` goes up with every save, so each process can tell with one
    primary-key read whether its cached copy is still current (mailer.site).
    """

    __tablename__ = "site_settings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime | None]
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    # Set when an admin answered the first start's questions (postal address,
    # automatic sending): until then the console asks them.
    setup_done_at: Mapped[datetime | None]
    site_name: Mapped[str | None] = mapped_column(String(100))
    home_url: Mapped[str | None] = mapped_column(String(2048))
    postal_address: Mapped[str | None] = mapped_column(String(500))
    logo_url: Mapped[str | None] = mapped_column(String(2048))
    brand_colour: Mapped[str | None] = mapped_column(String(7))
    default_topics: Mapped[str | None] = mapped_column(String(100))
    default_frequency: Mapped[str | None] = mapped_column(_enum(Frequency))
    from_name: Mapped[str | None] = mapped_column(String(100))
    from_address: Mapped[str | None] = mapped_column(String(320))


class ApiToken(Base):
    """A bearer token for the CMS API; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class Feed(Base):
    """An RSS or Atom feed polled for new notices of one kind."""

    __tablename__ = "feed"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    kind: Mapped[str] = mapped_column(_enum(NoticeKind))
    created_at: Mapped[datetime]
    last_polled_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    imported_count: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    # Its notices wait for approval before any automatic send (always so for http://).
    review: Mapped[bool] = mapped_column(default=False, server_default=text("false"))


class AdminRole(enum.StrEnum):
    EDITOR = "editor"  # notices and campaigns
    ADMIN = "admin"  # also subscribers, settings and accounts


class AdminUser(Base):
    """A person who works in the admin console; the password is stored as an argon2 hash."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(_enum(AdminRole), default=AdminRole.EDITOR)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    # Two-factor sign-in (RFC 6238): the secret, encrypted under the secret key
    # (mailer.two_factor); on once totp_enabled_at is set. The last time step
    # used refuses the same code twice.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None]


class AdminSession(Base):
    """One signed-in console session: the cookie holds a random token, this row its hash.

    Deleting the row ends the session at once (logout, password change, deactivation).
    """

    __tablename__ = "admin_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin_id: Mapped[int] = mapped_column(
        ForeignKey("admin_user.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class RecoveryCode(Base):
    """A one-time code that stands in for the authenticator app; only its argon2 hash is kept."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_id: Mapped[int] = mapped_column(
        ForeignKey("admin_user.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(200))
    used_at: Mapped[datetime | None]


class LoginFailure(Base):
    """Failed console logins of one (account name, client IP) pair: what slows that pair down."""

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    pair: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of name and IP
    failures: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime]


class AuditEntry(Base):
    """One admin action: who did what to which thing, and when."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admin_user.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320))  # kept when the account is deleted
    action: Mapped[str] = mapped_column(String(60))  # e.g. "campaign.start"
    target: Mapped[str] = mapped_column(String(200), default="")  # e.g. "campaign 12"
    detail: Mapped[str] = mapped_column(Text, default="")


class BounceKind(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"


class BounceEvent(Base):
    """One bounce or complaint that changed something: what the console's bounces page lists.

    Holds personal data (the address, the report as received), so erasing a
    subscriber deletes their rows (mailer.privacy). `delivery_id` has no
    foreign key, like the delivery table itself.
    """

    __tablename__ = "bounce_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(_enum(BounceKind))
    email: Mapped[str] = mapped_column(String(320), index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None]
    mail_id: Mapped[int | None] = mapped_column(
        ForeignKey("transactional_mail.id", ondelete="SET NULL")
    )
    source: Mapped[str] = mapped_column(String(20))  # mailbox, webhook, ses, sendgrid, ...
    status: Mapped[str] = mapped_column(String(16), default="")  # enhanced status code
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[str] = mapped_column(Text, default="")  # the report as received

    # Rates per campaign count its events by kind.
    __table_args__ = (Index("ix_bounce_event_campaign_kind", "campaign_id", "kind"),)


class WebhookNonce(Base):
    """A provider's one-time value already accepted (a Mailgun token, an SNS MessageId):
    the same value again is a replay. Pruned by housekeeping once too old to be fresh."""

    __tablename__ = "webhook_nonce"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    value_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the value
    seen_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (UniqueConstraint("provider", "value_hash"),)
