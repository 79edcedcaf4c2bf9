"""The `mailer notice` and `mailer campaign` commands, against a real worker and relay."""

from __future__ import annotations

import json

from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from mailer.cli import main
from mailer.models import AuditEntry, Campaign, Notice
from tests.conftest import running_worker
from tests.helpers import add_confirmed, wait_until


def _cli(app, *args: str):
    result = CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))
    return result


def _audit(session, action: str) -> list[AuditEntry]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_notice_add_prints_the_id_and_stores_the_notice(app, session):
    result = _cli(
        app,
        "notice",
        "add",
        "--kind",
        "webinar",
        "--title",
        "Sleep and pain",
        "--url",
        "https://site.example/w",
        "--starts-at",
        "2026-12-03T17:00:00+00:00",
        "--duration-minutes",
        "45",
        "--time-zone",
        "Europe/London",
    )
    assert result.exit_code == 0, result.output
    notice = session.get(Notice, int(result.output.strip()))
    assert (notice.kind, notice.title, notice.duration_minutes, notice.source) == (
        "webinar",
        "Sleep and pain",
        45,
        "cli",
    )


def test_notice_add_refuses_bad_input_and_stores_nothing(app, session):
    missing_start = _cli(
        app, "notice", "add", "--kind", "webinar", "--title", "x", "--url", "https://site.example/w"
    )
    assert missing_start.exit_code == 1 and "starts_at" in missing_start.output
    bad_url = _cli(
        app, "notice", "add", "--kind", "article", "--title", "x", "--url", "javascript:alert(1)"
    )
    assert bad_url.exit_code == 1 and "url must be an http(s) URL" in bad_url.output
    naive = _cli(
        app,
        "notice",
        "add",
        "--kind",
        "article",
        "--title",
        "x",
        "--url",
        "https://site.example/a",
        "--published-at",
        "2026-12-03T17:00:00",
    )
    assert naive.exit_code == 2 and "time zone offset" in naive.output
    assert session.scalars(select(Notice)).all() == []


def test_campaign_create_start_wait_and_status(app, session, inbox):
    for number in range(25):
        add_confirmed(session, f"r{number}@example.org", ("article",))
    session.commit()
    notice = _cli(
        app,
        "notice",
        "add",
        "--kind",
        "article",
        "--title",
        "New article",
        "--url",
        "https://site.example/a",
    ).output.strip()
    created = _cli(
        app,
        "campaign",
        "create",
        "--subject",
        "This week",
        "--notices",
        notice,
        "--topics",
        "article",
    )
    assert created.exit_code == 0, created.output
    campaign_id = created.output.strip()

    with running_worker(app):
        started = _cli(app, "campaign", "start", campaign_id, "--wait")
    assert started.exit_code == 0, started.output
    assert "Sending to 25 recipients." in started.output
    assert len(inbox.messages) == 25

    status = _cli(app, "campaign", "status", campaign_id, "--json")
    counts = json.loads(status.output)
    assert counts["status"] == "finished"
    assert (counts["total"], counts["sent"], counts["failed"], counts["pending"]) == (25, 25, 0, 0)
    human = _cli(app, "campaign", "status", campaign_id).output
    assert "sent: 25" in human


def test_campaign_commands_refuse_what_cannot_be_done(app, session):
    notice = _cli(
        app, "notice", "add", "--kind", "article", "--title", "A", "--url", "https://site.example/a"
    ).output.strip()
    assert (
        "no notice with id 77"
        in _cli(app, "campaign", "create", "--subject", "S", "--notices", f"{notice},77").output
    )
    assert (
        "unknown topic podcast"
        in _cli(
            app, "campaign", "create", "--subject", "S", "--notices", notice, "--topics", "podcast"
        ).output
    )
    campaign_id = _cli(
        app,
        "campaign",
        "create",
        "--subject",
        "S",
        "--notices",
        notice,
        "--at",
        "2030-01-01T09:00:00+01:00",
    ).output.strip()
    assert session.get(Campaign, int(campaign_id)).status == "scheduled"
    paused = _cli(app, "campaign", "pause", campaign_id)
    assert paused.exit_code == 1 and "cannot pause a campaign that is scheduled" in paused.output
    assert _cli(app, "campaign", "cancel", campaign_id).exit_code == 0
    session.expire_all()
    assert session.get(Campaign, int(campaign_id)).status == "cancelled"
    assert "no campaign with id 999" in _cli(app, "campaign", "status", "999").output


def test_preview_and_send_test_before_starting(app, session, inbox):
    notice = _cli(
        app,
        "notice",
        "add",
        "--kind",
        "video",
        "--title",
        "Gentle stretches",
        "--url",
        "https://site.example/v",
    ).output.strip()
    campaign_id = _cli(
        app, "campaign", "create", "--subject", "New video", "--notices", notice
    ).output.strip()
    html = _cli(app, "campaign", "preview", campaign_id)
    assert html.exit_code == 0 and "Gentle stretches" in html.output and "<table" in html.output
    text = _cli(app, "campaign", "preview", campaign_id, "--text")
    assert "Watch: https://site.example/v" in text.output
    with running_worker(app):  # queued: the worker talks to the relay, not the command
        sent = _cli(app, "campaign", "send-test", campaign_id, "--to", "Editor@Example.org")
        assert sent.exit_code == 0, sent.output
        expected = f"A test of campaign {campaign_id} is on its way to editor@example.org."
        assert expected in sent.output
        [mail] = inbox.wait_for("editor@example.org")
        assert mail.message["Subject"] == "[Test] New video"
        [entry] = wait_until(lambda: _audit(session, "campaign.test"))
    assert (entry.actor.startswith("cli:"), entry.detail) == (True, "to …@example.org: sent")
    assert session.get(Campaign, int(campaign_id)).status == "draft"  # nothing started
    refused = _cli(app, "campaign", "send-test", campaign_id, "--to", "not-an-address")
    assert refused.exit_code == 1 and "@-sign" in refused.output
