"""The List-Unsubscribe URL opens nothing else; preferences links expire, can be revoked, and a
move to a new address tells the old one, with a way back (issue 11, item 2)."""

from __future__ import annotations

import re
import time

from itsdangerous import TimestampSigner

from mailer.models import TransactionalMail
from tests.conftest import running_worker
from tests.helpers import add_confirmed, hidden, path_of, run_campaign, text_part
from tests.security.flows import (
    ask_for_link,
    notice,
    preferences_path,
    subscriber,
    unsubscribe_path,
)

CHANGE_LINK = re.compile(r"https?://\S+/change-address/\S+")
UNDO_LINK = re.compile(r"https?://\S+/undo-address/\S+")
DAY = 86400


def _days_later(monkeypatch, days: float) -> None:
    """Every link is now checked as if `days` had passed since it was mailed."""
    now = time.time()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: int(now + days * DAY))


def test_the_unsubscribe_page_hands_out_no_preferences_link(make_app, session, inbox):
    app = make_app(send_rate=0, relay_hold=0.3)
    add_confirmed(session, "ann@example.org", ("article",))
    session.commit()
    with running_worker(app):
        run_campaign(app, session, [notice(session)])
        [digest] = inbox.wait_for("ann@example.org")

    # Mailbox providers fetch this URL; it must not lead on to the data export.
    page = app.test_client().get(unsubscribe_path(digest))

    assert page.status_code == 200 and "Unsubscribe?" in page.text
    assert "/preferences/" not in page.text
    assert 'href="/preferences"' in page.text  # "email me a link" instead
    assert page.headers["Cache-Control"] == "no-store"


def test_a_preferences_link_expires_and_email_me_a_link_issues_a_new_one(
    make_app, session, inbox, monkeypatch
):
    app = make_app(preferences_link_days=7)
    add_confirmed(session, "ann@example.org", name="Ann")
    session.commit()
    client = app.test_client()
    with running_worker(app):
        ask_for_link(client, "ann@example.org")
        old = preferences_path(inbox.wait_for("ann@example.org")[0])

    _days_later(monkeypatch, 6.9)
    assert client.get(old).status_code == 200
    _days_later(monkeypatch, 7.1)
    expired = client.get(old)
    data = client.get(old + "/data.json")

    assert expired.status_code == 400 and "Email me a new link" in expired.text
    assert data.status_code == 400 and "Ann" not in data.text
    monkeypatch.undo()
    with running_worker(app):
        inbox.reset()
        session.execute(TransactionalMail.__table__.delete())  # a day later: the limit is spent
        session.commit()
        ask_for_link(client, "ann@example.org")
        fresh = preferences_path(inbox.wait_for("ann@example.org")[0])
    assert client.get(fresh).status_code == 200


def test_a_move_to_a_new_address_tells_the_old_one_and_can_be_undone(app, session, inbox):
    """Someone holding a forwarded preferences link moves the subscription to their address."""
    add_confirmed(session, "ann@example.org", name="Ann")
    session.commit()
    ann, thief = app.test_client(), app.test_client()
    with running_worker(app):
        ask_for_link(ann, "ann@example.org")
        stolen = preferences_path(inbox.wait_for("ann@example.org")[0])
        page = thief.get(stolen)
        thief.post(
            stolen + "/address",
            data={
                "csrf_token": hidden(page.text, "csrf_token"),
                "address-email": "eve@example.net",
            },
        )
        change = path_of(
            CHANGE_LINK.search(text_part(inbox.wait_for("eve@example.net")[0].message))[0]
        )
        page = thief.get(change)
        moved = thief.post(change, data={"csrf_token": hidden(page.text, "csrf_token")})
        assert moved.status_code == 200 and subscriber(session, "eve@example.net") is not None
        [_, notice_mail] = inbox.wait_for("ann@example.org", count=2)
        # The thief asks for a preferences link of their own.
        session.execute(TransactionalMail.__table__.delete())
        session.commit()
        ask_for_link(thief, "eve@example.net")
        [_, thief_mail] = inbox.wait_for("eve@example.net", count=2)
    thief_link = preferences_path(thief_mail)
    assert thief.get(thief_link).status_code == 200

    assert "moved to a new address" in str(notice_mail.message["Subject"])
    assert "eve@example.net" in text_part(notice_mail.message)
    undo = path_of(UNDO_LINK.search(text_part(notice_mail.message))[0])
    page = ann.get(undo)
    assert subscriber(session, "ann@example.org") is None  # a GET changes nothing
    back = ann.post(undo, data={"csrf_token": hidden(page.text, "csrf_token")})

    assert back.status_code == 200 and "Your subscription is back" in back.text
    restored = subscriber(session, "ann@example.org")
    assert restored is not None and (restored.name, restored.status) == ("Ann", "confirmed")
    assert subscriber(session, "eve@example.net") is None
    assert thief.get(thief_link).status_code == 400  # the thief's links are void
    assert thief.get(stolen).status_code == 400
    again = ann.post(undo, data={"csrf_token": hidden(page.text, "csrf_token")})
    assert again.status_code == 400  # spent: the undo gave the row a new key
