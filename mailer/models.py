"""Database tables. Behaviour lives in the domain modules, not here."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, MetaData, String, Text
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


class MailKind(enum.StrEnum):
    """Transactional mails, one template pair each under templates/email/."""

    CONFIRM = "confirm"
    ALREADY_SUBSCRIBED = "already_subscribed"
    WELCOME = "welcome"


class MailStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


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
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]

    topics: Mapped[list[SubscriberTopic]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (Index("ix_subscriber_status_created_at", "status", "created_at"),)

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
    confirmed_at: Mapped[datetime | None]
    confirmed_ip: Mapped[str | None] = mapped_column(String(45))

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

    __table_args__ = (Index("ix_transactional_mail_email_created_at", "email", "created_at"),)


class Suppression(Base):
    """An address that must get no further mail ("this wasn't me", bounces, erasure)."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
