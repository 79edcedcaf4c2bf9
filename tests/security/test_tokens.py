"""Link tokens act only on the row they were minted for (issue 11, item 1).

The attack: on SQLite a deleted row's id comes back for the next signup, so a
token that names an id alone (confirm, "this wasn't me", preferences,
unsubscribe, VERP) acts on whoever got that id next. Each token is now bound
to a random key of its row; erasing, moving to a new address or revoking
links gives the row a new key and voids every token minted before.
"""

from __future__ import annotations

from sqlalchemy import select

from mailer.models import Subscriber, TransactionalMail
from tests.conftest import running_worker
from tests.helpers import (
    CONFIRM_LINK,
    NOT_ME_LINK,
    PREFERENCES_LINK,
    add_confirmed,
    hidden,
    link,
    path_of,
    post_signup,
    run_campaign,
)
from tests.security.flows import (
    MAILTO_TOKEN,
    ask_for_link,
    bounce_report,
    cli,
    confirm_signup,
    drop,
    mailto_unsubscribe,
    make_maildir,
    notice,
    post_form,
    preferences_path,
    subscriber,
    unsubscribe_path,
)

INVALID = "This link is not valid"


def test_an_old_confirm_link_does_not_confirm_the_next_signup(app, session, inbox, dialect):
    client = app.test_client()
    with running_worker(app):
        post_signup(client, app, email="ann@example.org")
        [ann_mail] = inbox.wait_for("ann@example.org")
        post_form(client, path_of(link(NOT_ME_LINK, ann_mail.message)))  # Ann's signup goes
        assert subscriber(session, "ann@example.org") is None
        post_signup(client, app, email="bob@example.org")
        inbox.wait_for("bob@example.org")
    if dialect == "sqlite":  # the attack's premise: Bob got the ids Ann's link names
        assert subscriber(session, "bob@example.org").id == 1

    confirm = path_of(link(CONFIRM_LINK, ann_mail.message))
    page = client.get(confirm)
    answer = client.post(confirm, data={"csrf_token": hidden(client.get("/").text, "csrf_token")})

    assert page.status_code == 400 and INVALID in page.text
    assert answer.status_code == 400 and INVALID in answer.text
    assert subscriber(session, "bob@example.org").status == "pending"  # double opt-in holds
    kinds = session.scalars(select(TransactionalMail.kind)).all()
    assert "welcome" not in kinds


def test_an_erased_readers_preferences_link_shows_nothing_of_the_next_reader(app, session, inbox):
    add_confirmed(session, "ann@example.org", name="Ann")
    session.commit()
    client = app.test_client()
    with running_worker(app):
        ask_for_link(client, "ann@example.org")
        ann_link = preferences_path(inbox.wait_for("ann@example.org")[0])
        assert cli(app, "subscribers", "erase", "ann@example.org", "--yes").exit_code == 0
        post_signup(client, app, email="bob@example.org", name="Bob", ip="198.51.100.7")
        inbox.wait_for("bob@example.org")

    for path in (ann_link, ann_link + "/data.json"):
        answer = client.get(path)
        assert answer.status_code == 400 and INVALID in answer.text, path
        assert "bob@example.org" not in answer.text and "198.51.100.7" not in answer.text


def test_revoked_links_open_nothing_and_unsubscribe_no_one(make_app, session, inbox, tmp_path):
    app = make_app(send_rate=0, relay_hold=0.3)
    add_confirmed(session, "ann@example.org", ("article",))
    session.commit()
    client = app.test_client()
    with running_worker(app):
        run_campaign(app, session, [notice(session)])
        [digest] = inbox.wait_for("ann@example.org")
    preferences = path_of(link(PREFERENCES_LINK, digest.message))
    one_click = unsubscribe_path(digest)
    [mailto] = MAILTO_TOKEN.findall(str(digest.message["List-Unsubscribe"]))
    verp = digest.mail_from.partition("+")[2].partition("@")[0]
    for token in (mailto, verp):  # compact tokens fit an address's local part
        assert len(token) <= 64 and token == token.lower()
    page = client.get(preferences)
    assert page.status_code == 200 and client.get(one_click).status_code == 200

    revoked = client.post(
        preferences + "/forget-links", data={"csrf_token": hidden(page.text, "csrf_token")}
    )

    assert revoked.status_code == 200 and "revoked" in revoked.text
    assert client.get(preferences).status_code == 400
    assert client.get(preferences + "/data.json").status_code == 400
    assert client.get(one_click).status_code == 400
    assert client.post(one_click, data={"List-Unsubscribe": "One-Click"}).status_code == 400
    maildir = make_maildir(tmp_path / "bounces")
    drop(maildir, mailto_unsubscribe(mailto), bounce_report(digest.mail_from, "ann@example.org"))
    processed = cli(app, "bounces", "process", "--mailbox", f"maildir://{maildir}")
    assert "forged: 2" in processed.output, processed.output
    ann = subscriber(session, "ann@example.org")
    assert ann is not None and ann.status == "confirmed"
    assert session.scalars(select(Subscriber.soft_bounces)).one() == 0
    assert cli(app, "subscribers", "data", "ann@example.org").output.count('"suppressed": null')


def test_each_signup_and_reader_gets_a_key_of_its_own(app, session, inbox):
    client = app.test_client()
    with running_worker(app):
        confirm_signup(client, app, inbox, "ann@example.org")
        post_signup(client, app, email="bob@example.org")
        inbox.wait_for("bob@example.org")
    keys = session.scalars(select(Subscriber.token_key)).all()
    assert len(keys) == 2 and len(set(keys)) == 2 and all(len(key) == 32 for key in keys)
