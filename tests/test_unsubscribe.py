"""List-Unsubscribe and one-click (RFC 8058), the unsubscribe page, preferences, new address."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from mailer import clock, notices, suppression
from mailer.models import Delivery, Subscriber, Suppression, TransactionalMail
from tests.conftest import running_worker
from tests.helpers import (
    PREFERENCES_LINK,
    add_confirmed,
    hidden,
    html_part,
    link,
    path_of,
    run_campaign,
    text_part,
)
from tests.smtp_sink import Received

UNSUBSCRIBE_URL = re.compile(r"<(https?://[^>]+/u/[^>]+)>")


@pytest.fixture
def list_app(make_app):
    return make_app(send_rate=0, relay_hold=0.3)


def _notice(session, kind: str = "article", title: str = "Sleep and pain") -> int:
    return notices.create_notice(
        session,
        notices.NoticeDraft(kind=kind, title=title, url=f"https://site.example/{kind}"),
        source="cli",
        now=clock.now(),
    )


def _unsubscribe_path(received: Received) -> str:
    [url] = UNSUBSCRIBE_URL.findall(str(received.message["List-Unsubscribe"]))
    return path_of(url)


def _status(session, email: str) -> str:
    session.expire_all()
    return session.scalar(select(Subscriber.status).where(Subscriber.email == email))


def test_campaign_mail_carries_the_list_headers_verbatim_once(make_app, session, inbox):
    # A long base URL: the signed URL passes 77 characters, where email.policy would
    # RFC 2047-encode it unless told otherwise.
    base = "https://newsletters.health-information-site.example/mailing"
    list_app = make_app(send_rate=0, base_url=base)
    add_confirmed(session, "ann@example.org")
    notice = _notice(session)
    with running_worker(list_app):
        run_campaign(list_app, session, [notice])
    [received] = inbox.wait_for("ann@example.org")
    raw = received.raw.decode()
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "List-Post"):
        assert raw.count(f"\r\n{name}:") == 1, name
    value = str(received.message["List-Unsubscribe"])
    # The signed URL arrives as written: not RFC 2047-encoded, not broken by folding.
    assert "=?" not in raw.split("\r\n\r\n")[0]
    assert re.fullmatch(
        re.escape(f"<{base}/u/") + r"\d+-\d+-[a-z2-7]{16}>, "
        r"<mailto:unsubscribe\+\d+-\d+-[a-z2-7]{16}@mailer\.test\?subject=unsubscribe>",
        " ".join(value.split()),
    ), value
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received.message["List-Post"] == "NO"
    assert "<notices.mailer.test>" in received.message["List-Id"]
    # VERP: bounces name the delivery they are about.
    assert re.fullmatch(r"bounce\+\d+-[a-z2-7]{16}@mailer\.test", received.mail_from)
    # The footer's visible link is the same URL (RFC 8058: GET and POST share it).
    url = UNSUBSCRIBE_URL.findall(value)[0]
    assert url in text_part(received.message) and url in html_part(received.message)


def test_one_click_post_as_gmail_sends_it(list_app, session, inbox):
    ann = add_confirmed(session, "ann@example.org")
    add_confirmed(session, "bob@example.org")
    notice = _notice(session)
    with running_worker(list_app):
        first = run_campaign(list_app, session, [notice])
        path = _unsubscribe_path(inbox.wait_for("ann@example.org")[0])

        mailbox_provider = list_app.test_client(use_cookies=False)
        page = mailbox_provider.get(path)  # a scanner or the reader: changes nothing
        assert page.status_code == 200 and "Unsubscribe from everything" in page.text
        assert _status(session, "ann@example.org") == "confirmed"

        answer = mailbox_provider.post(
            path,
            data={"List-Unsubscribe": "One-Click"},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 200 and "Location" not in answer.headers
        assert "You are unsubscribed" in answer.text
        assert "Set-Cookie" not in answer.headers
        subscriber = session.get(Subscriber, ann)
        session.refresh(subscriber)
        assert subscriber.status == "unsubscribed"
        assert subscriber.unsubscribe_channel == "one-click"
        assert subscriber.unsubscribed_campaign_id == first
        assert suppression.reason_for(session, "ann@example.org") == "unsubscribed"

        again = mailbox_provider.post(path, data={"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200  # form-urlencoded this time, and harmless

        run_campaign(list_app, session, [notice], subject="The next one")
    assert [r.message["Subject"] for r in inbox.wait_for("bob@example.org", count=2)] == [
        "New this week",
        "The next one",
    ]
    assert len(inbox.to("ann@example.org")) == 1


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda token: token[:-3], id="truncated"),
        pytest.param(lambda token: token[:-1] + ("a" if token[-1] != "a" else "b"), id="forged"),
        pytest.param(lambda token: "2" + token[1:], id="other-subscriber"),
        pytest.param(lambda token: "not-a-token", id="garbage"),
    ],
)
def test_bad_unsubscribe_tokens_change_nothing(list_app, session, mangle):
    from mailer.sending.links import LinkMaker

    settings = list_app.extensions["mailer.settings"]
    add_confirmed(session, "ann@example.org")
    add_confirmed(session, "bob@example.org")
    session.commit()
    key = session.get_one(Subscriber, 1).token_key
    token = LinkMaker(settings.base_url, settings.secret_key).unsubscribe_token(1, 0, key)
    path = f"/u/{mangle(token)}"
    client = list_app.test_client(use_cookies=False)
    page = client.get(path)
    assert page.status_code == 400 and "not valid" in page.text.lower()
    post = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert post.status_code == 400 and "not valid" in post.text
    assert {_status(session, "ann@example.org"), _status(session, "bob@example.org")} == {
        "confirmed"
    }
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_a_post_without_the_one_click_body_is_refused(list_app, session):
    from mailer.sending.links import LinkMaker

    settings = list_app.extensions["mailer.settings"]
    add_confirmed(session, "ann@example.org")
    session.commit()
    key = session.get_one(Subscriber, 1).token_key
    path = path_of(LinkMaker(settings.base_url, settings.secret_key).unsubscribe_url(1, 0, key))
    answer = list_app.test_client().post(path, data={"something": "else"})
    assert answer.status_code == 400 and "List-Unsubscribe=One-Click" in answer.text
    assert _status(session, "ann@example.org") == "confirmed"


def _preferences(client, received: Received) -> tuple[str, str]:
    path = path_of(link(PREFERENCES_LINK, received.message))
    page = client.get(path)
    assert page.status_code == 200, page.text
    return path, hidden(page.text, "csrf_token")


def test_preferences_change_what_the_next_digest_holds(list_app, session, inbox):
    add_confirmed(session, "ann@example.org", ("article", "video"))
    article, video = _notice(session), _notice(session, "video", "Gentle stretches")
    client = list_app.test_client()
    with running_worker(list_app):
        run_campaign(list_app, session, [article, video])
        path, csrf = _preferences(client, inbox.wait_for("ann@example.org")[0])
        saved = client.post(
            path,
            data={
                "csrf_token": csrf,
                "topics": ["video"],
                "frequency": "weekly",
                "name": "Ann Lee",
                "time_zone": "Asia/Tokyo",
            },
        )
        assert saved.status_code == 200 and "Your preferences are saved" in saved.text
        run_campaign(list_app, session, [article, video], subject="Second")
    second = inbox.wait_for("ann@example.org", count=2)[1]
    assert "Gentle stretches" in text_part(second.message)
    assert "Sleep and pain" not in text_part(second.message)
    assert "Hello Ann Lee," in text_part(second.message)
    subscriber = session.scalars(select(Subscriber)).one()
    assert (subscriber.frequency, subscriber.time_zone) == ("weekly", "Asia/Tokyo")


def test_bad_preferences_input_is_refused_and_nothing_changes(list_app, session, inbox):
    add_confirmed(session, "ann@example.org", ("article",), name="Ann")
    client = list_app.test_client()
    with running_worker(list_app):
        run_campaign(list_app, session, [_notice(session)])
        path, csrf = _preferences(client, inbox.wait_for("ann@example.org")[0])
    answer = client.post(
        path,
        data={"csrf_token": csrf, "topics": ["video"], "frequency": "hourly", "name": "A\r\nB"},
    )
    assert answer.status_code == 400
    assert "line breaks" in answer.text
    session.expire_all()
    subscriber = session.scalars(select(Subscriber)).one()
    assert (subscriber.name, subscriber.topic_names) == ("Ann", ["article"])


def test_new_address_needs_confirmation_from_that_mailbox(list_app, session, inbox):
    add_confirmed(session, "old@example.org", ("article",))
    client = list_app.test_client()
    with running_worker(list_app):
        run_campaign(list_app, session, [_notice(session)])
        path, csrf = _preferences(client, inbox.wait_for("old@example.org")[0])
        asked = client.post(
            path + "/address", data={"csrf_token": csrf, "address-email": "New@Example.org"}
        )
        assert asked.status_code == 200 and "We sent a confirmation link to new@example.org" in (
            asked.text
        )
        assert _status(session, "old@example.org") == "confirmed"  # kept until confirmed
        invalid = client.post(
            path + "/address", data={"csrf_token": csrf, "address-email": "nope@"}
        )
        assert invalid.status_code == 400
        assert "There must be something after the @-sign" in invalid.text
        [mail] = inbox.wait_for("new@example.org")
    change = path_of(
        re.search(r"https?://\S+/change-address/\S+", text_part(mail.message)).group(0)
    )
    page = client.get(change)
    assert "Move your subscription to" in page.text
    assert _status(session, "new@example.org") is None  # a GET changes nothing
    done = client.post(change, data={"csrf_token": hidden(page.text, "csrf_token")})
    assert done.status_code == 200 and "Your notices now go to" in done.text
    assert _status(session, "new@example.org") == "confirmed"
    assert _status(session, "old@example.org") is None

    forged = client.get(change[:-4] + "abcd")
    assert forged.status_code == 400
    # The move gave the subscription a new key: links minted before it are void.
    assert client.get(path).status_code == 400


def test_email_me_a_link_answers_the_same_for_strangers(list_app, session, inbox):
    add_confirmed(session, "ann@example.org")
    session.commit()
    client = list_app.test_client()
    with running_worker(list_app):
        pages = []
        for address in ("ann@example.org", "stranger@example.org"):
            form = client.get("/preferences")
            pages.append(
                client.post(
                    "/preferences",
                    data={"csrf_token": hidden(form.text, "csrf_token"), "email": address},
                )
            )
        [mail] = inbox.wait_for("ann@example.org")
    assert pages[0].text == pages[1].text and "a link to its preferences" in pages[0].text
    assert mail.message["Subject"] == "Your preferences link for Health Notices"
    assert client.get(path_of(link(PREFERENCES_LINK, mail.message))).status_code == 200
    assert inbox.to("stranger@example.org") == []
    kinds = session.scalars(select(TransactionalMail.email)).all()
    assert kinds == ["ann@example.org"]


def test_download_my_data_from_the_preferences_page(list_app, session, inbox):
    add_confirmed(session, "ann@example.org", name="Ann")
    client = list_app.test_client()
    with running_worker(list_app):
        run_campaign(list_app, session, [_notice(session)])
        path, _csrf = _preferences(client, inbox.wait_for("ann@example.org")[0])
    data = client.get(path + "/data.json")
    assert data.status_code == 200 and data.mimetype == "application/json"
    assert "attachment" in data.headers["Content-Disposition"]
    body = data.get_json()
    assert (body["email"], body["name"]) == ("ann@example.org", "Ann")
    assert body["campaigns"] == [
        {"subject": "New this week", "status": "sent", "sent_at": body["campaigns"][0]["sent_at"]}
    ]
    assert session.scalar(select(func.count()).select_from(Delivery)) == 1
