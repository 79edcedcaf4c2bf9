"""What /api/v1/subscribers takes and gives: the models that validate it and describe it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mailer.models import Subscriber
from mailer.subscriber_search import SubscriberRow
from mailer.web.api.fields import NO_CONTROLS, Id, UtcOut, text

TopicName = Literal["article", "video", "webinar"]
FrequencyName = Literal["published", "weekly"]
State = Literal["pending", "confirmed", "unsubscribed", "bounced"]
ALL_TOPICS: list[TopicName] = ["article", "video", "webinar"]
NEW_EXAMPLE = {
    "email": "ann@example.org",
    "name": "Ann Smith",
    "topics": ["article", "webinar"],
    "frequency": "weekly",
    "consent_proof": "Ticked 'newsletter' on the checkout form, order 4711, 2026-03-02",
}
SUBSCRIBER_EXAMPLE = {
    "id": 42,
    "email": "ann@example.org",
    "name": "Ann Smith",
    "state": "confirmed",
    "topics": ["article", "webinar"],
    "frequency": "weekly",
    "time_zone": "",
    "created_at": "2026-03-02T08:30:00+00:00",
    "confirmed_at": "2026-03-02T08:30:00+00:00",
    "unsubscribed_at": None,
    "unsubscribe_channel": "",
}


class SubscriberIn(BaseModel):
    """A new subscriber. With `consent_proof`, confirmed at once (the proof is kept as
    their consent record: use it only for people who agreed to this newsletter);
    without, pending until they confirm the mailed link (double opt-in)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [NEW_EXAMPLE]})

    email: str = text(320)
    name: str = text(100, default="", pattern=NO_CONTROLS)
    topics: list[TopicName] = Field(default=ALL_TOPICS, min_length=1, max_length=3)
    frequency: FrequencyName | None = Field(default=None, description="Default: the site's")
    consent_proof: str | None = text(
        2000, default=None, description="Where and when the person agreed; omit for double opt-in"
    )
    source_url: str = text(2048, default="", description="Double opt-in: the page they used")


class SubscriberChange(BaseModel):
    """What changes; fields left out stay as they are."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"topics": ["video"], "frequency": "weekly"}]},
    )

    name: str | None = text(100, default=None, pattern=NO_CONTROLS)
    topics: list[TopicName] | None = Field(default=None, min_length=1, max_length=3)
    frequency: FrequencyName | None = None
    time_zone: str | None = text(64, default=None, description="IANA zone; empty: the site's")


class SubscriberOut(BaseModel):
    """A subscriber as mailer holds them."""

    model_config = ConfigDict(json_schema_extra={"examples": [SUBSCRIBER_EXAMPLE]})

    id: int
    email: str
    name: str
    state: str = Field(description="pending, confirmed, unsubscribed or bounced")
    topics: list[str]
    frequency: str
    time_zone: str
    created_at: UtcOut
    confirmed_at: UtcOut | None
    unsubscribed_at: UtcOut | None
    unsubscribe_channel: str = Field(description="How they left: one-click, page, api, ...")

    @classmethod
    def of(cls, subscriber: Subscriber, state: str) -> SubscriberOut:
        return cls(
            id=subscriber.id,
            email=subscriber.email,
            name=subscriber.name,
            state=state,
            topics=subscriber.topic_names,
            frequency=subscriber.frequency,
            time_zone=subscriber.time_zone,
            created_at=subscriber.created_at,
            confirmed_at=subscriber.confirmed_at,
            unsubscribed_at=subscriber.unsubscribed_at,
            unsubscribe_channel=subscriber.unsubscribe_channel,
        )


class SubscriberListed(BaseModel):
    id: int
    email: str
    name: str
    state: str
    topics: list[str]
    created_at: UtcOut
    confirmed_at: UtcOut | None
    unsubscribed_at: UtcOut | None

    @classmethod
    def of(cls, row: SubscriberRow) -> SubscriberListed:
        return cls.model_validate(row, from_attributes=True)


class SubscriberPage(BaseModel):
    """One page, newest first; pass `next_cursor` as `cursor` for the next (null: the last)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [SUBSCRIBER_EXAMPLE], "next_cursor": "41"}]}
    )

    items: list[SubscriberListed]
    next_cursor: str | None


class SubscriberQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: State | None = None
    topic: TopicName | None = None
    search: str = text(320, default="", description="Part of the address or name, 3+ characters")
    cursor: str = Field(default="", pattern=r"^[0-9]{0,18}$", description="From next_cursor")
    limit: int = Field(default=50, ge=1, le=200)


class SubscriberPath(BaseModel):
    subscriber_id: Id


class Created(BaseModel):
    """What a new subscriber's POST answers: the subscriber, and whether a mail went out."""

    subscriber: SubscriberOut
    confirmation_mail: Literal["queued", "none"]
