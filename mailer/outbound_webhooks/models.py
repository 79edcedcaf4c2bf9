"""Tables of the outbound webhooks: endpoints, the outbox of messages, deliveries, attempts.

A message is one event, written in the transaction of the change it reports
(the transactional outbox); a delivery is that message to one endpoint, with
its retry schedule; an attempt is one POST of it, kept for the console's log.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models import Base

# Ids reach URLs (the console's endpoint and resend links): SQLite must not reuse them.
NEVER_REUSED = {"sqlite_autoincrement": True}


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at; leased while a worker sends it
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: a day of failures, or the endpoint was disabled


class WebhookEndpoint(Base):
    """A URL that wants some events, signed with its own secret."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (NEVER_REUSED,)

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[str] = mapped_column(Text)  # comma-separated event types
    # "whsec_" + base64 of 32 random bytes, as the Standard Webhooks libraries take
    # it, sealed under the secret key (mailer.outbound_webhooks.sealing).
    secret: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(320), default="")
    # Since when every attempt failed (None: the last one succeeded, or none yet).
    failing_since: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str] = mapped_column(Text, default="")

    @property
    def event_list(self) -> list[str]:
        return [name for name in self.events.split(",") if name]


class WebhookMessage(Base):
    """One event as sent: its Standard Webhooks id, type and JSON payload."""

    __tablename__ = "webhook_message"
    __table_args__ = (Index("ix_webhook_message_subscriber_id", "subscriber_id"), NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(40), unique=True)  # webhook-id: same on retries
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)
    # Whom it is about, so erasure can delete what it says of them. No foreign
    # key: the "erased" event outlives its subscriber.
    subscriber_id: Mapped[int | None]


class WebhookDelivery(Base):
    """One message to one endpoint, until it is delivered or given up."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        # What the beat's sweep and the workers' claim walk.
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        # The console's log of one endpoint, newest first.
        Index("ix_webhook_delivery_endpoint", "endpoint_id", "id"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_message.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(9), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    # Retries go on for MAILER_WEBHOOK_RETRY_FOR from here; a resend starts a new window.
    window_start: Mapped[datetime]
    lease_until: Mapped[datetime | None]  # a worker is sending it until then
    last_status: Mapped[int | None]  # HTTP status of the last attempt; None: no answer
    last_latency_ms: Mapped[int | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One POST of a delivery: when, the answer's status, how long it took, what went wrong."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (NEVER_REUSED,)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    status: Mapped[int | None]
    latency_ms: Mapped[int]
    error: Mapped[str] = mapped_column(Text, default="")
