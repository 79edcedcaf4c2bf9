"""`mailer campaign list` and `notice list`, the CLI in the audit log, sentences, summaries."""

from __future__ import annotations

import json

from sqlalchemy import select

from mailer.models import AuditEntry
from tests.conftest import running_worker
from tests.helpers import add_confirmed
from tests.test_campaign_cli import _cli


def test_lists_audit_and_a_summary_line_for_logs(app, session, inbox) -> None:
    assert _cli(app, "notice", "list").output == "There are no notices yet.\n"
    assert _cli(app, "campaign", "list").output == "There are no campaigns yet.\n"
    for number in range(3):
        add_confirmed(session, f"reader{number}@example.org", ("article",))
    session.commit()
    notice = _cli(
        app,
        "notice",
        "add",
        "--kind",
        "article",
        "--title",
        "Sleep and pain",
        "--url",
        "https://site.example/s",
    ).output.strip()
    campaign = _cli(
        app, "campaign", "create", "--subject", "This week", "--notices", notice
    ).output.strip()

    listed = _cli(app, "notice", "list").output
    assert f"{notice:>6}  article" in listed and "cli    Sleep and pain" in listed
    [row] = [
        json.loads(line) for line in _cli(app, "campaign", "list", "--json").output.splitlines()
    ]
    assert (row["id"], row["subject"], row["status"]) == (int(campaign), "This week", "draft")

    with running_worker(app):
        started = _cli(app, "campaign", "start", campaign, "--wait")
    assert started.exit_code == 0, started.output
    # CliRunner is no terminal: the bar is not drawn, the summary line says how it went.
    assert f"Campaign {campaign} is finished: 3 sent, 0 failed, 0 bounced, 0 skipped of 3." in (
        started.stderr
    )
    assert "finished" in _cli(app, "campaign", "list").output

    paused = _cli(app, "campaign", "pause", campaign)
    assert paused.exit_code == 1
    assert paused.output == (
        "Error: Nothing was changed: cannot pause a campaign that is finished.\n"
    )
    session.expire_all()
    entries = session.execute(
        select(AuditEntry.actor, AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id)
    ).all()
    assert [(action, target) for _actor, action, target in entries] == [
        ("notice.create", f"notice {notice}"),
        ("campaign.create", f"campaign {campaign}"),
        ("campaign.start", f"campaign {campaign}"),
    ]
    assert all(actor.startswith("cli") for actor, _action, _target in entries)


def test_help_speaks_in_sentences(app) -> None:
    text = _cli(app, "campaign", "--help").output
    assert "Queue the failed deliveries of a campaign again." in text
    assert "Resend-failed a campaign." not in text
    assert "List the newest campaigns" in text
