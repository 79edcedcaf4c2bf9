"""Outbound webhooks against a real local receiver and a real worker: signed, retried after
500s, never sent twice after a 200, nothing lost to a killed worker, no internal addresses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer import api_tokens, clock, events
from mailer.models import AuditEntry
from mailer.outbound_webhooks import endpoints
from mailer.outbound_webhooks.models import WebhookAttempt, WebhookDelivery, WebhookMessage
from tests.admin_helpers import signed_in
from tests.conftest import running_worker
from tests.helpers import add_confirmed, post_signup, settings_env, wait_until
from tests.webhook_receiver import start_receiver
from worker import tasks

CELERY = str(Path(sys.executable).parent / "celery")
SUBSCRIBER_EVENTS = [name for name in events.TYPES if name.startswith("subscriber.")]


@pytest.fixture
def receiver():
    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def hook_app(make_app, receiver):
    """An app whose fetch rules allow the local receiver (and nothing else internal)."""
    return make_app(
        fetch_allow="127.0.0.1/32",
        fetch_ports=str(receiver.port),
        webhook_retry_backoff=0.05,
        webhook_timeout=2,
    )


def _endpoint(app, url: str, chosen=SUBSCRIBER_EVENTS) -> tuple[int, str]:
    with app.extensions["mailer.sessionmaker"]() as session:
        endpoint_id, secret = endpoints.create(
            session,
            url=url,
            chosen=chosen,
            description="CRM",
            actor="test",
            keys=app.extensions["mailer.settings"].secret_keys,
            now=clock.now(),
        )
        session.commit()
    return endpoint_id, secret


def _deliveries(session) -> list[WebhookDelivery]:
    session.expire_all()
    return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _api(session) -> dict[str, str]:
    token = api_tokens.create_token(session, name="cms", now=clock.now())
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_a_reader_s_life_reaches_the_receiver_signed(hook_app, session, receiver, inbox):
    _, secret = _endpoint(hook_app, receiver.url)
    client = hook_app.test_client()
    auth = _api(session)
    with running_worker(hook_app):
        post_signup(client, hook_app, email="ann@example.org", name="Ann", topics=("video",))
        created = client.post(
            "/api/v1/subscribers",
            json={"email": "bob@example.org", "consent_proof": "checkout form"},
            headers=auth,
        ).get_json()["subscriber"]
        bob = f"/api/v1/subscribers/{created['id']}"
        client.patch(bob, json={"topics": ["webinar"]}, headers=auth)
        client.post(f"{bob}/unsubscribe", headers=auth)
        # Erasure deletes what is still unsent about the person, so the earlier
        # events go out first.
        receiver.wait_for(4)
        client.delete(bob, headers=auth)
        calls = receiver.wait_for(5)
        wait_until(lambda: all(d.status == "delivered" for d in _deliveries(session)))

    payloads = [call.verified(secret) for call in calls]  # the standardwebhooks verifier
    assert {payload["type"] for payload in payloads} == {
        "subscriber.pending",
        "subscriber.confirmed",
        "subscriber.updated",
        "subscriber.unsubscribed",
        "subscriber.erased",
    }
    by_type = {payload["type"]: payload["data"] for payload in payloads}
    assert (by_type["subscriber.pending"]["email"], by_type["subscriber.pending"]["topics"]) == (
        "ann@example.org",
        ["video"],
    )
    assert by_type["subscriber.updated"]["topics"] == ["webinar"]
    assert by_type["subscriber.unsubscribed"]["channel"] == "api"
    assert by_type["subscriber.erased"] == {"id": created["id"]}  # nothing personal
    assert len({call.headers["webhook-id"] for call in calls}) == 5
    assert all(call.forged_for("whsec_" + "A" * 44) for call in calls)
    # Erasure took what the earlier messages said of Bob.
    stored = " ".join(session.scalars(select(WebhookMessage.payload)))
    assert "bob@example.org" not in stored and "ann@example.org" in stored


def test_retried_after_500s_and_never_again_after_a_200(hook_app, session, receiver):
    endpoint_id, secret = _endpoint(hook_app, receiver.url)
    receiver.answers.extend([500, 503])
    auth = _api(session)
    with running_worker(hook_app):
        hook_app.test_client().post(
            "/api/v1/subscribers",
            json={"email": "cy@example.org", "consent_proof": "signed form"},
            headers=auth,
        )
        calls = receiver.wait_for(3)
        wait_until(lambda: _deliveries(session)[0].status == "delivered")
        # The beat's sweep finds nothing to send again once it was delivered.
        assert tasks.requeue_webhooks.apply().get() == 0
        time.sleep(0.5)

    assert len(receiver.calls) == 3
    assert {call.headers["webhook-id"] for call in calls} == {calls[0].headers["webhook-id"]}
    assert [call.verified(secret)["type"] for call in calls] == ["subscriber.confirmed"] * 3
    delivery = _deliveries(session)[0]
    assert (delivery.attempts, delivery.last_status) == (3, 200)
    attempts = session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
    assert [attempt.status for attempt in attempts] == [500, 503, 200]
    page = _admin_client(hook_app, session).get(f"/admin/webhooks/{endpoint_id}")
    text = page.get_data(as_text=True)
    assert "subscriber.confirmed" in text and "delivered" in text and " ms" in text


def test_a_killed_worker_loses_no_event(hook_app, session, receiver):
    _, secret = _endpoint(hook_app, receiver.url)
    receiver.hold = held = threading.Event()
    doomed = subprocess.Popen(
        [CELERY, "-A", "worker.app", "worker", "--pool", "solo", "--queues", "webhooks",
         "--hostname", f"doomed-{os.getpid()}@%h", "--loglevel", "WARNING"],
        env=settings_env(hook_app.extensions["mailer.settings"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        subscriber_id = add_confirmed(session, "dee@example.org")
        session.commit()
        hook_app.test_client().post(
            f"/api/v1/subscribers/{subscriber_id}/unsubscribe", headers=_api(session)
        )
        receiver.wait_for(1, timeout=60)  # the POST is in flight in the doomed worker
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        held.set()
    assert _deliveries(session)[0].status == "pending"  # nothing recorded its answer

    time.sleep(hook_app.extensions["mailer.settings"].webhook_timeout + 5.5)  # its lease ends
    with running_worker(hook_app):
        assert tasks.requeue_webhooks.apply().get() == 1
        calls = receiver.wait_for(2)
        wait_until(lambda: _deliveries(session)[0].status == "delivered")
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]
    assert calls[1].verified(secret)["data"]["email"] == "dee@example.org"


def test_an_endpoint_failing_all_day_is_switched_off_and_the_admin_told(
    make_app, session, receiver
):
    app = make_app(
        fetch_allow="127.0.0.1/32",
        fetch_ports=str(receiver.port),
        webhook_retry_backoff=0.05,
        webhook_retry_for=1,  # "a day", shortened
    )
    endpoint_id, _ = _endpoint(app, receiver.url)
    receiver.answers.extend([500] * 1000)
    subscriber_id = add_confirmed(session, "eve@example.org")
    session.commit()
    with running_worker(app):
        app.test_client().post(
            f"/api/v1/subscribers/{subscriber_id}/unsubscribe", headers=_api(session)
        )
        wait_until(lambda: _deliveries(session)[0].status == "failed")

    session.expire_all()
    endpoint = endpoints.get(session, endpoint_id)
    assert not endpoint.enabled and endpoint.disabled_reason.startswith("failing")
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.disabled")).one()
    assert entry.target == f"webhook endpoint {endpoint_id}"
    page = _admin_client(app, session).get("/admin/").get_data(as_text=True)
    assert f"Webhook endpoint {endpoint_id} is switched off" in page
    # Nothing more is recorded for a switched-off endpoint.
    with app.extensions["mailer.sessionmaker"]() as other:
        events.record(other, "subscriber.updated", {"id": 1}, now=clock.now())
        other.commit()
    assert len(_deliveries(session)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hooks",  # loopback, not allowed here
        "http://10.0.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/hooks",
        "http://localhost:{port}/hooks",
    ],
)
def test_no_internal_address_is_posted_to(make_app, session, receiver, url):
    app = make_app(webhook_retry_backoff=0.05, webhook_retry_for=0.5, webhook_timeout=1)
    _endpoint(app, url.format(port=receiver.port))
    subscriber_id = add_confirmed(session, "fay@example.org")
    session.commit()
    with running_worker(app):
        app.test_client().post(
            f"/api/v1/subscribers/{subscriber_id}/unsubscribe", headers=_api(session)
        )
        wait_until(lambda: _deliveries(session)[0].status == "failed")
    delivery = _deliveries(session)[0]
    assert delivery.last_status is None and delivery.last_error.startswith("refused")
    assert receiver.calls == []


def _admin_client(app, _session):
    return signed_in(app, "admin")
