"""Sending a delivery: claim it, sign it (Standard Webhooks), POST it, record the answer.

A delivery is claimed with a lease, so a duplicate task does nothing and a
worker killed mid-POST leaves a lease that runs out; the beat (`due`) then
queues it again. Only a 2xx answer delivers. Anything else is retried with
exponential backoff and full jitter until MAILER_WEBHOOK_RETRY_FOR has
passed since the first attempt (a day by default); then the delivery is
given up, and an endpoint that failed everything for that long is switched
off, audited, and shown in the console.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from mailer import admins, metrics, safe_http
from mailer.outbound_webhooks import sealing
from mailer.outbound_webhooks.endpoints import disable
from mailer.outbound_webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from mailer.settings import Settings

log = logging.getLogger("mailer.outbound_webhooks")
MAX_DELAY = 3600.0  # the longest wait between two attempts
RETENTION = timedelta(days=30)  # messages and their logs are kept this long


@dataclass(frozen=True, slots=True)
class Rules:
    """How deliveries are sent and retried: MAILER_WEBHOOK_* and the fetch rules of feeds."""

    policy: safe_http.Policy
    keys: tuple[str, ...]  # what opens the endpoints' sealed secrets
    backoff: float
    retry_for: timedelta
    lease: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        policy = replace(
            safe_http.Policy.from_settings(settings),
            timeout=settings.webhook_timeout,
            max_bytes=1024 * 1024,
            user_agent="mailer-webhooks/1",
        )
        return cls(
            policy=policy,
            keys=settings.secret_keys,
            backoff=settings.webhook_retry_backoff,
            retry_for=timedelta(seconds=settings.webhook_retry_for),
            # Longer than a POST can take (its deadline), so only a dead worker's runs out.
            lease=timedelta(seconds=settings.webhook_timeout + 5),
        )

    def delay(self, attempts: int) -> float:
        """Full jitter: anywhere from 0 to backoff x 2^(attempts-1), at most an hour."""
        ceiling = min(MAX_DELAY, self.backoff * 2 ** min(attempts - 1, 20))
        return random.uniform(0, ceiling)  # noqa: S311 - a spread, no secret


@dataclass(frozen=True, slots=True)
class Sent:
    """What one run of `deliver` did; `retry_in` seconds when it should run again."""

    outcome: str  # delivered, retry, failed, or not-due (claimed elsewhere, or done)
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class _Claimed:
    url: str
    secret: str
    msg_id: str
    payload: str


def signed_headers(secret: str, msg_id: str, at: datetime, payload: str) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt: the same id on every retry, its own time."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, payload),
    }


def _claim(session: Session, delivery_id: int, rules: Rules, now: datetime) -> _Claimed | None:
    claimed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
        )
        .values(lease_until=now + rules.lease)
    ).rowcount
    if not claimed:
        return None
    endpoint, message = session.execute(
        select(WebhookEndpoint, WebhookMessage)
        .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    secret = sealing.unseal(rules.keys, endpoint.secret)
    return _Claimed(endpoint.url, secret, message.msg_id, message.payload)


def _post(claimed: _Claimed, rules: Rules, at: datetime) -> tuple[int | None, str]:
    """(HTTP status or None, what went wrong or "")."""
    headers = {
        "Content-Type": "application/json",
        **signed_headers(claimed.secret, claimed.msg_id, at, claimed.payload),
    }
    try:
        answer = safe_http.post(
            claimed.url, rules.policy, body=claimed.payload.encode(), headers=headers
        )
    except safe_http.FetchError as error:
        log.warning("webhook %s: %s", claimed.msg_id, error.detail)
        return None, error.public
    return answer.status, "" if 200 <= answer.status < 300 else f"answered HTTP {answer.status}"


def _record(
    session: Session,
    delivery_id: int,
    answer: tuple[int | None, str],
    latency_ms: int,
    rules: Rules,
    now: datetime,
) -> Sent:
    status, error = answer
    delivery = session.get_one(WebhookDelivery, delivery_id, with_for_update=True)
    endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id, at=now, status=status, latency_ms=latency_ms, error=error
        )
    )
    delivery.attempts += 1
    delivery.lease_until = None
    delivery.last_status, delivery.last_latency_ms, delivery.last_error = status, latency_ms, error
    if not error:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
        endpoint.failing_since, endpoint.last_success_at = None, now
        metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
        return Sent("delivered")
    metrics.WEBHOOK_ATTEMPTS.labels("failed").inc()
    endpoint.failing_since = endpoint.failing_since or now
    if now < delivery.window_start + rules.retry_for:
        retry_in = rules.delay(delivery.attempts)
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
        return Sent("retry", retry_in)
    delivery.status = DeliveryStatus.FAILED
    # This delivery was tried for the whole retry window; if nothing the endpoint
    # was sent succeeded since its first try, the endpoint failed all that time.
    first_try = session.scalar(
        select(func.min(WebhookAttempt.at)).where(WebhookAttempt.delivery_id == delivery_id)
    )
    if endpoint.enabled and first_try is not None and endpoint.failing_since <= first_try:
        _switch_off(session, endpoint, rules, now)
    return Sent("failed")


def _switch_off(session: Session, endpoint: WebhookEndpoint, rules: Rules, now: datetime) -> None:
    hours = rules.retry_for.total_seconds() / 3600
    reason = f"failing: no delivery succeeded for {hours:g} hours"
    disable(session, endpoint, reason=reason, now=now)
    admins.audit(
        session, "mailer", "webhook.disabled", f"webhook endpoint {endpoint.id}", reason, now=now
    )
    log.error("webhook endpoint %s switched off: %s", endpoint.id, reason)


def deliver(
    sessions: sessionmaker[Session],
    delivery_id: int,
    rules: Rules,
    *,
    clock: Callable[[], datetime],
) -> Sent:
    """Send one delivery if it is due and nobody else holds it; record what came of it.

    The POST happens outside any transaction: a slow endpoint holds no lock.
    """
    with sessions() as session:
        claimed = _claim(session, delivery_id, rules, clock())
        session.commit()
    if claimed is None:
        return Sent("not-due")
    started = time.monotonic()
    answer = _post(claimed, rules, clock())
    latency_ms = round((time.monotonic() - started) * 1000)
    with sessions() as session:
        sent = _record(session, delivery_id, answer, latency_ms, rules, clock())
        session.commit()
    return sent


def due(session: Session, *, now: datetime, limit: int = 1000) -> list[int]:
    """Deliveries that should be under way and are not: their task was lost, or its worker died."""
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
    )


def prune(session: Session, *, now: datetime) -> int:
    """Delete messages (with their deliveries and attempts) older than RETENTION, none pending."""
    old = select(WebhookMessage.id).where(
        WebhookMessage.created_at < now - RETENTION,
        ~WebhookMessage.id.in_(
            select(WebhookDelivery.message_id).where(
                WebhookDelivery.status == DeliveryStatus.PENDING
            )
        ),
    )
    return session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(old))).rowcount or 0
