"""Webhook endpoints as admins set them up in the console: URL, events, a secret shown once."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer import events
from mailer.errors import MailerError
from mailer.outbound_webhooks import sealing
from mailer.outbound_webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from mailer.tokens import Keys

LOG_PAGE = 50


class InvalidEndpoint(MailerError):
    """An endpoint's URL or events are unusable; the message says which."""


@dataclass(frozen=True, slots=True)
class LogRow:
    """One delivery in an endpoint's log."""

    delivery: WebhookDelivery
    msg_id: str
    type: str
    attempts: list[WebhookAttempt]


def new_secret() -> str:
    """32 random bytes, as the Standard Webhooks libraries take a secret ("whsec_" + base64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _checked(url: str, chosen: Sequence[str]) -> tuple[str, str]:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise InvalidEndpoint("The URL must be an http(s) URL such as https://crm.example/hooks.")
    if any(char.isspace() for char in url) or parts.username or parts.password:
        raise InvalidEndpoint("The URL may hold no spaces and no user or password.")
    unknown = sorted(set(chosen) - set(events.TYPES))
    if unknown:
        raise InvalidEndpoint(f"Unknown event {unknown[0][:40]!r}.")
    if not chosen:
        raise InvalidEndpoint("Choose at least one event.")
    return url, ",".join(name for name in events.TYPES if name in set(chosen))


def create(
    session: Session,
    *,
    url: str,
    chosen: Sequence[str],
    description: str,
    actor: str,
    keys: Keys,
    now: datetime,
) -> tuple[int, str]:
    """Store an endpoint; return its id and its secret, which the caller shows once.

    The secret is stored sealed under `keys` (MAILER_SECRET_KEY and the old ones).
    """
    url, names = _checked(url, chosen)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=url,
        events=names,
        description=description.strip()[:200],
        secret=sealing.seal(keys, secret),
        enabled=True,
        created_at=now,
        created_by=actor[:320],
        disabled_reason="",
    )
    session.add(endpoint)
    session.flush()
    return endpoint.id, secret


def get(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise InvalidEndpoint(f"No webhook endpoint {endpoint_id}.")
    return endpoint


def change(
    session: Session, endpoint_id: int, *, url: str, chosen: Sequence[str], description: str
) -> None:
    endpoint = get(session, endpoint_id)
    endpoint.url, endpoint.events = _checked(url, chosen)
    endpoint.description = description.strip()[:200]
    session.flush()


def set_enabled(session: Session, endpoint_id: int, *, enabled: bool, now: datetime) -> None:
    """Switch an endpoint on (failures forgotten) or off (what waits for it is given up)."""
    endpoint = get(session, endpoint_id)
    endpoint.enabled = enabled
    if enabled:
        endpoint.failing_since, endpoint.disabled_at, endpoint.disabled_reason = None, None, ""
    else:
        disable(session, endpoint, reason="switched off by an admin", now=now)
    session.flush()


def disable(session: Session, endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> None:
    """Stop sending to `endpoint`; its pending deliveries are failed (each can be resent)."""
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.FAILED, last_error="endpoint disabled", lease_until=None)
    )


def delete(session: Session, endpoint_id: int) -> None:
    session.delete(get(session, endpoint_id))  # deliveries and attempts go by cascade
    session.flush()


def listed(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def failing_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Endpoints mailer switched off itself after a day of failures: the console says so."""
    return list(
        session.scalars(
            select(WebhookEndpoint).where(
                ~WebhookEndpoint.enabled, WebhookEndpoint.disabled_reason.startswith("failing")
            )
        )
    )


def log(session: Session, endpoint_id: int, *, before: int | None = None) -> list[LogRow]:
    """The endpoint's deliveries, newest first, each with its attempts."""
    query = (
        select(WebhookDelivery, WebhookMessage.msg_id, WebhookMessage.type)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(LOG_PAGE)
    )
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    rows = session.execute(query).all()
    attempts: dict[int, list[WebhookAttempt]] = {row[0].id: [] for row in rows}
    if attempts:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [
        LogRow(delivery, msg_id, type_, attempts[delivery.id]) for delivery, msg_id, type_ in rows
    ]


def resend(session: Session, endpoint_id: int, delivery_id: int, *, now: datetime) -> int:
    """Send a delivery again from now on, whatever became of it; return its id to queue."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise InvalidEndpoint(f"No delivery {delivery_id} for this endpoint.")
    if not get(session, endpoint_id).enabled:
        raise InvalidEndpoint("Switch the endpoint on first.")
    delivery.status, delivery.next_attempt_at, delivery.window_start = (
        DeliveryStatus.PENDING,
        now,
        now,
    )
    delivery.lease_until = None
    session.flush()
    return delivery.id
