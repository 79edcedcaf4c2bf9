"""A subscriber's data: export as JSON, and erasure that leaves only a hash (GDPR Art. 15-20)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from mailer import campaigns, clock, notices, suppression
from mailer.cli import main
from mailer.models import Base, Suppression
from tests.conftest import running_worker
from tests.helpers import CONFIRM_LINK, add_confirmed, hidden, link, path_of, post_signup


def _cli(app, *args: str):
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def _signed_up_and_confirmed(app, inbox, email: str, name: str) -> None:
    client = app.test_client()
    post_signup(client, app, email=email, name=name, topics=("article",))
    path = path_of(link(CONFIRM_LINK, inbox.wait_for(email.lower())[0].message))
    page = client.get(path)
    client.post(path, data={"csrf_token": hidden(page.text, "csrf_token")})


def _every_value(session) -> str:
    """Every value in every table, as one string to search for personal data."""
    values = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            values.extend(str(value) for value in row)
    return "\n".join(values).lower()


def test_export_then_erase_leaves_no_personal_data(app, session, inbox):
    with running_worker(app):
        _signed_up_and_confirmed(app, inbox, "Zed.Person@Example.org", "Zed Quixote")
        inbox.wait_for("zed.person@example.org", count=2)  # confirmation + welcome
    add_confirmed(session, "other@example.org", ("article",))
    session.commit()

    exported = _cli(app, "subscribers", "data", "zed.person@example.org")
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.output)
    assert (data["name"], data["status"], data["topics"]) == (
        "Zed Quixote",
        "confirmed",
        ["article"],
    )
    assert data["consents"][0]["confirmed_at"] and data["consents"][0]["ip"] == "127.0.0.1"
    assert [mail["kind"] for mail in data["mails"]] == ["confirm", "welcome"]

    erased = _cli(app, "subscribers", "erase", "zed.person@example.org", "--yes")
    assert erased.exit_code == 0, erased.output
    session.expire_all()
    everything = _every_value(session)
    assert "zed.person" not in everything and "quixote" not in everything
    assert "127.0.0.1" not in everything  # the consent record's IP went too
    [entry] = session.scalars(select(Suppression)).all()
    assert (entry.email, entry.reason) == (None, "erased")
    assert entry.email_hash == suppression.address_hash(session, "zed.person@example.org")

    again = _cli(app, "subscribers", "data", "zed.person@example.org")
    assert again.exit_code == 1 and "no subscriber zed.person@example.org" in again.output


def test_an_erased_address_is_not_mailed_again(app, session, inbox):
    add_confirmed(session, "gone@example.org", ("article",))
    add_confirmed(session, "stays@example.org", ("article",))
    session.commit()
    assert _cli(app, "subscribers", "erase", "gone@example.org", "--yes").exit_code == 0
    notice = notices.create_notice(
        session,
        notices.NoticeDraft(kind="article", title="After", url="https://site.example/a"),
        source="cli",
        now=clock.now(),
    )
    campaign = campaigns.create_campaign(
        session, subject="After erasure", notice_ids=[notice], now=clock.now()
    )
    assert campaigns.start_campaign(session, campaign, now=clock.now()) == 1
    assert suppression.reason_for(session, "gone@example.org") == "erased"


def test_erase_asks_first_and_names_unknown_addresses(app, session):
    add_confirmed(session, "kept@example.org")
    session.commit()
    declined = CliRunner().invoke(
        main,
        ["subscribers", "erase", "kept@example.org"],
        obj=ScriptInfo(create_app=lambda: app),
        input="n\n",
    )
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert suppression.reason_for(session, "kept@example.org") is None
    unknown = _cli(app, "subscribers", "erase", "nobody@example.org", "--yes")
    assert unknown.exit_code == 1 and "no subscriber nobody@example.org" in unknown.output
    invalid = _cli(app, "subscribers", "erase", "not-an-address", "--yes")
    assert invalid.exit_code == 1 and "@" in invalid.output
