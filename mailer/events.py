"""What happened, recorded by the domain function that made it happen, in its transaction.

`record` does two things. It writes the event to the outbox (a
webhook_message and one webhook_delivery per endpoint that wants its
type) in the caller's transaction, so a change and its announcement are
committed together or not at all. And it notes the event on the session;
once the transaction commits (`init_app`'s listener), the metrics count it
and the deliveries are queued for the worker (mailer.jobs). A rollback
forgets both. A worker that dies, or a broker that is down at that
moment, loses nothing: the beat queues every delivery still pending.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from mailer.models import Campaign, Subscriber
from mailer.outbound_webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage

SUBSCRIBER_PENDING = "subscriber.pending"
SUBSCRIBER_CONFIRMED = "subscriber.confirmed"
SUBSCRIBER_UPDATED = "subscriber.updated"
SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed"
SUBSCRIBER_ERASED = "subscriber.erased"
DELIVERY_BOUNCED = "delivery.bounced"
DELIVERY_COMPLAINT = "delivery.complaint"
CAMPAIGN_STARTED = "campaign.started"
CAMPAIGN_PAUSED = "campaign.paused"
CAMPAIGN_FINISHED = "campaign.finished"
TYPES = (
    SUBSCRIBER_PENDING,
    SUBSCRIBER_CONFIRMED,
    SUBSCRIBER_UPDATED,
    SUBSCRIBER_UNSUBSCRIBED,
    SUBSCRIBER_ERASED,
    DELIVERY_BOUNCED,
    DELIVERY_COMPLAINT,
    CAMPAIGN_STARTED,
    CAMPAIGN_PAUSED,
    CAMPAIGN_FINISHED,
)

# Keys in Session.info, for the transaction under way.
_RECORDED = "mailer.events.recorded"
_DELIVERIES = "mailer.events.deliveries"
_ENDPOINTS = "mailer.events.endpoints"


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _endpoints(session: Session) -> list[tuple[int, set[str]]]:
    """The enabled endpoints and what each wants, read once per transaction."""
    if _ENDPOINTS not in session.info:
        rows = session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.enabled)
        )
        session.info[_ENDPOINTS] = [(row.id, set(row.events.split(","))) for row in rows]
    return session.info[_ENDPOINTS]


def record(
    session: Session,
    type_: str,
    data: dict[str, Any],
    *,
    now: datetime,
    subscriber_id: int | None = None,
) -> None:
    """Record one event in the caller's transaction (see the module's docstring).

    `subscriber_id` names whom the event is about, so erasing them deletes it.
    """
    session.info.setdefault(_RECORDED, []).append(Event(type_, data))
    wanted_by = [endpoint for endpoint, types in _endpoints(session) if type_ in types]
    if not wanted_by:
        return
    msg_id = "msg_" + secrets.token_urlsafe(18)
    payload = json.dumps({"type": type_, "timestamp": _iso(now), "data": data})
    message_id = session.execute(
        insert(WebhookMessage).returning(WebhookMessage.id),
        {
            "msg_id": msg_id,
            "type": type_,
            "payload": payload,
            "created_at": now,
            "subscriber_id": subscriber_id,
        },
    ).scalar_one()
    delivery_ids = session.scalars(
        insert(WebhookDelivery).returning(WebhookDelivery.id),
        [
            {
                "message_id": message_id,
                "endpoint_id": endpoint_id,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "window_start": now,
                "last_error": "",
                "created_at": now,
            }
            for endpoint_id in wanted_by
        ],
    ).all()
    session.info.setdefault(_DELIVERIES, []).extend(delivery_ids)


def subscriber_data(subscriber: Subscriber, **extra: Any) -> dict[str, Any]:
    """What subscriber events say about the subscriber."""
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "topics": subscriber.topic_names,
        "frequency": subscriber.frequency,
        "time_zone": subscriber.time_zone,
        **extra,
    }


def record_subscriber(
    session: Session, type_: str, subscriber: Subscriber, *, now: datetime, **extra: Any
) -> None:
    record(
        session, type_, subscriber_data(subscriber, **extra), now=now, subscriber_id=subscriber.id
    )


def record_campaigns(
    session: Session, type_: str, campaign_ids: Sequence[int], *, now: datetime
) -> None:
    """A campaign event for each of these campaigns."""
    if not campaign_ids:
        return
    for campaign in session.scalars(select(Campaign).where(Campaign.id.in_(list(campaign_ids)))):
        data = {
            "id": campaign.id,
            "subject": campaign.subject,
            "kind": campaign.kind,
            "status": campaign.status,
            "topics": campaign.topic_list,
            "started_at": _iso(campaign.started_at),
            "finished_at": _iso(campaign.finished_at),
        }
        record(session, type_, data, now=now)


def init_app(app: Flask, after_commit: Callable[[list[Event], list[int]], None]) -> None:
    """Call `after_commit(events, delivery_ids)` once each transaction of the app's sessions
    has committed; a rollback drops what it recorded."""
    factory = app.extensions["mailer.sessionmaker"]

    def committed(session: Session) -> None:
        recorded = session.info.pop(_RECORDED, [])
        deliveries = session.info.pop(_DELIVERIES, [])
        session.info.pop(_ENDPOINTS, None)
        if recorded or deliveries:
            after_commit(recorded, deliveries)

    def rolled_back(session: Session) -> None:
        for key in (_RECORDED, _DELIVERIES, _ENDPOINTS):
            session.info.pop(key, None)

    event.listen(factory, "after_commit", committed)
    event.listen(factory, "after_rollback", rolled_back)
