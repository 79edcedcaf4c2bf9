"""/metrics: each counter moves by what happened; only a scraper with the token or address
reads it; gunicorn's and Celery's processes are added up in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from prometheus_client.parser import text_string_to_metric_families

from mailer import clock, notices
from tests.conftest import running_worker
from tests.helpers import (
    CONFIRM_LINK,
    add_confirmed,
    link,
    path_of,
    post_signup,
    run_campaign,
    settings_env,
)

TOKEN = "metrics-token-0123456789"
WEBHOOK_SECRET = "webhook-secret-0123456789"


def _scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def _moved(before: dict, after: dict) -> dict:
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if after[key] != before.get(key, 0.0) and not key[0].endswith(("_created", "_bucket"))
    }


def test_counters_move_by_a_signup_a_confirm_a_campaign_and_a_bounce(make_app, session, inbox):
    app = make_app(metrics_token=TOKEN, bounce_webhook_secret=WEBHOOK_SECRET, send_rate=0)
    client = app.test_client()
    for number in range(3):
        add_confirmed(session, f"reader{number}@example.org", ("article",))
    session.commit()
    before = _scrape(client)

    with running_worker(app):
        post_signup(client, app, email="new@example.org")
        mail = inbox.wait_for("new@example.org")[0].message
        page = client.get(path_of(link(CONFIRM_LINK, mail)))
        csrf = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
        client.post(path_of(link(CONFIRM_LINK, mail)), data={"csrf_token": csrf.split('"')[0]})
        notice_id = notices.create_notice(
            session,
            notices.NoticeDraft(kind="article", title="New", url="https://site.example/a"),
            source="cli",
            now=clock.now(),
        )
        run_campaign(app, session, [notice_id])  # three readers; the new one reads all topics
        bounce = client.post(
            "/webhooks/bounce",
            json={
                "events": [
                    {"type": "bounce", "bounce_type": "hard", "email": "reader1@example.org"}
                ]
            },
            headers={"Authorization": f"Bearer {WEBHOOK_SECRET}"},
        )
        assert bounce.get_json()["applied"] == 1
        inbox.wait_for("new@example.org", count=3)  # confirmation, welcome, the campaign
    after = _scrape(client)

    moved = _moved(before, after)
    expected = {
        ("mailer_signups_total", (("outcome", "accepted"), ("reason", "page"))): 1,
        ("mailer_confirmations_total", ()): 1,
        ("mailer_mails_sent_total", (("class", "transactional"),)): 2,  # confirm, welcome
        ("mailer_mails_sent_total", (("class", "campaign"),)): 4,
        ("mailer_campaigns_total", (("event", "started"),)): 1,
        ("mailer_campaigns_total", (("event", "finished"),)): 1,
        ("mailer_bounces_total", (("kind", "hard"),)): 1,
    }
    assert {key: moved.get(key) for key in expected} == expected
    assert not any(key[0] == "mailer_mails_failed_total" for key in moved)
    latency = [key for key in moved if key[0] == "mailer_http_request_duration_seconds_count"]
    assert (
        "mailer_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/subscribe"), ("status", "302")),
    ) in latency
    assert ("mailer_queue_depth", (("queue", "transactional"),)) in after
    assert after[("mailer_relay_breaker_open", ())] == 0


def test_unsubscribes_by_channel_and_refused_signups_by_reason(make_app, session):
    app = make_app(metrics_token=TOKEN)
    client = app.test_client()
    before = _scrape(client)
    post_signup(client, app, email="bot@example.org", website="http://spam.example")
    subscriber_id = add_confirmed(session, "leaver@example.org")
    session.commit()
    from mailer import api_tokens

    token = api_tokens.create_token(session, name="cms", now=clock.now())
    session.commit()
    client.post(
        f"/api/v1/subscribers/{subscriber_id}/unsubscribe",
        headers={"Authorization": f"Bearer {token}"},
    )
    moved = _moved(before, _scrape(client))
    assert moved[("mailer_signups_total", (("outcome", "refused"), ("reason", "honeypot")))] == 1
    assert moved[("mailer_unsubscribes_total", (("channel", "api"),))] == 1


def test_only_the_token_or_an_allowed_address_reads_metrics(make_app):
    assert make_app().test_client().get("/metrics").status_code == 404  # off by default
    client = make_app(metrics_token=TOKEN, metrics_allow="10.1.0.0/16").test_client()
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    allowed = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert allowed.status_code == 200 and b"mailer_clicks_total" in allowed.data
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.2.0.1"}).status_code == 403
    forged = client.get(
        "/metrics", headers={"X-Forwarded-For": "10.1.2.3"}, environ_base={"REMOTE_ADDR": "8.8.8.8"}
    )
    assert forged.status_code == 403  # no trusted proxies: the header is not believed


COUNT_IN_A_PROCESS = textwrap.dedent(
    """
    from mailer import metrics
    metrics.MAILS_SENT.labels("campaign").inc(5)
    metrics.CLICKS.labels("weekly", "human").inc()
    """
)
SCRAPE_IN_A_PROCESS = textwrap.dedent(
    """
    from mailer import create_app
    app = create_app()
    body = app.test_client().get("/metrics", headers={"Authorization": "Bearer %s"}).get_data(True)
    print(body)
    """
)


def test_multiprocess_mode_adds_up_every_process(make_app, tmp_path):
    """As gunicorn's workers and Celery's prefork children do: each writes, a scrape sums."""
    settings = make_app(metrics_token=TOKEN).extensions["mailer.settings"]
    env = {**settings_env(settings), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT_IN_A_PROCESS], env=env, check=True)
    scraped = subprocess.run(
        [sys.executable, "-c", SCRAPE_IN_A_PROCESS % TOKEN],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    assert samples[("mailer_mails_sent_total", (("class", "campaign"),))] == 10
    assert samples[("mailer_clicks_total", (("agent", "human"), ("campaign_kind", "weekly")))] == 2
    assert len(os.listdir(tmp_path)) >= 2  # one file per process


def test_the_grafana_dashboard_asks_only_for_metrics_mailer_exports(make_app):
    import json
    import re
    from pathlib import Path

    dashboard = json.loads(Path("docs/grafana-dashboard.json").read_text())
    asked = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bmailer_[a-z_]+", target["expr"])
    }
    exported = (
        make_app(metrics_token=TOKEN)
        .test_client()
        .get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    )
    families = {family.name for family in text_string_to_metric_families(exported.get_data(True))}
    names = families | {f"{name}_total" for name in families}
    assert asked <= names, asked - names
