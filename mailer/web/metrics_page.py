"""GET /metrics for Prometheus, and the time every request takes.

Only for a scrape that sends MAILER_METRICS_TOKEN as a bearer token or
comes from an address in MAILER_METRICS_ALLOW; with neither set, /metrics
does not exist (404). The counts are everyone's in multiprocess mode
(mailer.metrics); the queue depths and held campaigns are read now.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from datetime import datetime

from flask import Blueprint, Flask, Response, current_app, g, request
from kombu import Connection
from kombu.exceptions import ChannelError
from sqlalchemy import func, select

from mailer import clock, db, jobs, metrics
from mailer.models import Campaign, CampaignStatus
from mailer.settings import Settings

bp = Blueprint("metrics", __name__)
log = logging.getLogger("mailer.web.metrics")
QUEUES = ("transactional", "bulk", "webhooks")


def _settings() -> Settings:
    return current_app.extensions["mailer.settings"]


def _allowed(settings: Settings) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if settings.metrics_token and scheme.lower() == "bearer":
        return hmac.compare_digest(token.strip().encode(), settings.metrics_token.encode())
    if settings.metrics_allow and request.remote_addr:
        client = ipaddress.ip_address(request.remote_addr)
        return any(
            client in ipaddress.ip_network(part.strip(), strict=False)
            for part in settings.metrics_allow.split(",")
        )
    return False


def queue_depths(broker_url: str) -> list[tuple[str, int]]:
    """Tasks waiting in each queue; none when the broker cannot be asked (the scrape goes on)."""
    options = jobs.celery_config(_settings())["broker_transport_options"]
    depths = []
    try:
        with Connection(broker_url, transport_options=options, connect_timeout=2) as connection:
            channel = connection.default_channel
            for queue in QUEUES:
                try:
                    count = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:  # never used yet: nothing waits in it
                    count = 0
                depths.append((queue, count))
    except Exception:  # a metric must never take the scrape down with the broker
        log.warning("queue depths unavailable", exc_info=True)
    return depths


def held_campaigns(now: datetime) -> int:
    return (
        db.get_session().scalar(
            select(func.count())
            .select_from(Campaign)
            .where(Campaign.status == CampaignStatus.SENDING, Campaign.hold_until > now)
        )
        or 0
    )


@bp.get("/metrics")
def scrape() -> Response | tuple[str, int]:
    settings = _settings()
    if not (settings.metrics_token or settings.metrics_allow):
        return "not found", 404
    if not _allowed(settings):
        return "forbidden", 403
    state = metrics.SystemState(queue_depths(settings.broker_url), held_campaigns(clock.now()))
    body, content_type = metrics.exposition(state)
    return Response(body, content_type=content_type)


def _start_clock() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.REQUEST_SECONDS.labels(route, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_start_clock)
    app.after_request(_observe)
