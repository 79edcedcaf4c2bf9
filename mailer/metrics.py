"""Every Prometheus metric mailer exports, in one place, and the /metrics exposition.

Counters and histograms live in prometheus-client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (gunicorn's workers and Celery's prefork
children each write their own files there; a scrape adds them up). It must
be set, to an empty directory, before the processes start (the dev server
does it under var/). Without it the counts are this process's own.

What is true of the whole system rather than of one process (the depth of
each queue, campaigns the relay's breaker holds) is read when scraped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

SIGNUPS = Counter(
    "mailer_signups",
    "Signups from the site's forms and the API, by outcome (accepted, refused) and reason",
    ["outcome", "reason"],
)
CONFIRMATIONS = Counter("mailer_confirmations", "Subscriptions confirmed (double opt-in, import)")
UNSUBSCRIBES = Counter(
    "mailer_unsubscribes",
    "Subscribers who left, by channel (one-click, page, mailto, api, ...)",
    ["channel"],
)
MAILS_SENT = Counter(
    "mailer_mails_sent", "Mails the relay accepted, by class (transactional, campaign)", ["class"]
)
MAILS_FAILED = Counter(
    "mailer_mails_failed", "Mails given up on, by class (transactional, campaign)", ["class"]
)
BOUNCES = Counter("mailer_bounces", "Bounces and complaints applied, by kind", ["kind"])
CAMPAIGNS = Counter("mailer_campaigns", "Campaigns started, paused and finished", ["event"])
WEBHOOK_ATTEMPTS = Counter(
    "mailer_webhook_attempts", "Outbound webhook POSTs, by outcome (delivered, failed)", ["outcome"]
)
# Incremented by the click tracker: the kind of campaign the link was in
# (manual, published, weekly, reminder) and whether a person or a mail
# scanner followed it.
CLICKS = Counter("mailer_clicks", "Links followed in campaign mail", ["campaign_kind", "agent"])
REQUEST_SECONDS = Histogram(
    "mailer_http_request_duration_seconds",
    "Time to answer an HTTP request, by route, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# A refusal's reason, from the words of mailer.antispam, as a label of few values.
REFUSAL_KINDS = (
    ("honeypot", "honeypot"),
    ("form stamp", "stamp"),
    ("sent ", "too_fast"),
    ("form stale", "stale"),
    ("disposable", "disposable"),
    ("captcha", "captcha"),
    ("address suppressed", "suppressed"),
    ("address had", "address_limit"),
    ("rate limit", "ip_limit"),
)


def signup_refused(reason: str) -> None:
    kind = next((label for start, label in REFUSAL_KINDS if reason.startswith(start)), "other")
    SIGNUPS.labels("refused", kind).inc()


def signup_accepted(source: str) -> None:
    SIGNUPS.labels("accepted", source).inc()


def count_event(type_: str, data: dict[str, object]) -> None:
    """Count one committed domain event (mailer.events)."""
    if type_ == "subscriber.confirmed":
        CONFIRMATIONS.inc()
    elif type_ == "subscriber.unsubscribed":
        UNSUBSCRIBES.labels(str(data.get("channel") or "unknown")).inc()
    elif type_ == "delivery.bounced":
        BOUNCES.labels(str(data.get("bounce_type"))).inc()
    elif type_ == "delivery.complaint":
        BOUNCES.labels("complaint").inc()
    elif type_.startswith("campaign."):
        CAMPAIGNS.labels(type_.removeprefix("campaign.")).inc()


class SystemState(Collector):
    """Gauges read at scrape time: queue depths, campaigns held by the relay's breaker."""

    def __init__(self, queue_depths: Iterable[tuple[str, int]], held_campaigns: int) -> None:
        self.queue_depths = list(queue_depths)
        self.held_campaigns = held_campaigns

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "mailer_queue_depth", "Tasks waiting in each broker queue", labels=["queue"]
        )
        for queue, count in self.queue_depths:
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily(
            "mailer_relay_breaker_open",
            "1 while the relay's circuit breaker (or a throttling answer) holds campaigns",
            value=1 if self.held_campaigns else 0,
        )
        yield GaugeMetricFamily(
            "mailer_campaigns_held",
            "Sending campaigns waiting for the relay",
            value=self.held_campaigns,
        )


class _ThisProcess(Collector):
    def collect(self) -> Iterator:
        yield from REGISTRY.collect()


def exposition(state: SystemState) -> tuple[bytes, str]:
    """The text a scrape gets: every process's counts (or this one's), and the system's state."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(state)
    return generate_latest(registry), CONTENT_TYPE_LATEST
