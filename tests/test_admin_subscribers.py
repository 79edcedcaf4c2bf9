"""The console's subscribers pages and `mailer subscribers import|export`.

Real PostgreSQL, a real Celery worker and the aiosmtpd relay; logins go through
the console's own login form.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from html import unescape

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from mailer import admins, clock, suppression
from mailer.cli import alembic_config, main
from mailer.models import (
    AuditEntry,
    Campaign,
    Consent,
    Delivery,
    Subscriber,
    SubscriberTopic,
    Suppression,
    SuppressionReason,
    TransactionalMail,
)
from tests.conftest import running_worker
from tests.helpers import CONFIRM_LINK, add_confirmed, link, path_of

PASSWORD = "correct horse battery staple"
GOOD_BAD_DUPLICATE_SUPPRESSED = (
    "email,name,topics\n"
    "ann@example.org,Ann,article|video\n"  # row 2: imported
    "not-an-address,Bob,\n"  # row 3: invalid
    "carl@example.org,Carl,article|podcast\n"  # row 4: unknown topic
    "ANN@example.org,Ann again,\n"  # row 5: duplicate of row 2 (case-blind)
    "dora@example.org,Dora,\n"  # row 6: suppressed after a bounce
    "eve@example.org,Eve,video\n"  # row 7: already a subscriber
    '"fay@example.org","Fay, the second",webinar\n'  # row 8: imported
)


# ---- helpers ----


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _hidden(html: str, name: str) -> list[str]:
    return re.findall(rf'type="hidden" name="{name}" value="([^"]*)"', html)


def log_in(client, session, *, role: str = "admin", email: str = "boss@example.org") -> None:
    admins.create_admin(session, email, PASSWORD, role, clock.now())
    session.commit()
    token = _token(client.get("/admin/login").get_data(as_text=True))
    response = client.post(
        "/admin/login", data={"csrf_token": token, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def _csrf(client) -> str:
    return _token(client.get("/admin/subscribers/import").get_data(as_text=True))


def upload(client, content: bytes | str, *, filename: str = "list.csv", **fields):
    """Post a file to the preview step, as the import page's form does."""
    data = content.encode() if isinstance(content, str) else content
    values = MultiDict({"csrf_token": _csrf(client), **fields})
    values.setlist("topics", fields.get("topics", []))
    values["file"] = FileStorage(io.BytesIO(data), filename, content_type="text/csv")
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart(values)
    return client.post(
        "/admin/subscribers/import/preview",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def confirm_import(client, preview_html: str):
    """Press "Import" on the preview page: post its hidden fields back."""
    data = {
        "csrf_token": _token(preview_html),
        "content": _hidden(preview_html, "content")[0],
        "filename": _hidden(preview_html, "filename")[0],
        "consent_proof": _hidden(preview_html, "consent_proof")[0],
        "topics": _hidden(preview_html, "topics"),
    }
    return client.post("/admin/subscribers/import", data=data)


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def _text(response) -> str:
    return _text_of(response.get_data(as_text=True))


def _text_of(html: str) -> str:
    # The page's words as a reader sees them: no tags, entities decoded, spaces collapsed.
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _cli(app, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app), input=input)


# ---- web import ----


def test_import_preview_then_report_lists_each_rejection_and_mails_the_accepted(
    app, client, session, inbox
):
    log_in(client, session)
    suppression.suppress(
        session, "dora@example.org", SuppressionReason.HARD_BOUNCE, now=clock.now()
    )
    add_confirmed(session, "eve@example.org", ("video",))
    session.commit()

    preview = upload(client, GOOD_BAD_DUPLICATE_SUPPRESSED)
    assert preview.status_code == 200
    text = _text(preview)
    assert "7 rows: 2 would be imported , 5 would be rejected" in text
    for expected in (
        "3 not-an-address invalid address",
        "4 carl@example.org unknown topic 'podcast'",
        "5 ann@example.org duplicate of row 2",
        "6 dora@example.org suppressed address: it bounced",
        "7 eve@example.org already a subscriber",
    ):
        assert expected in text
    assert "8 fay@example.org Fay, the second webinar" in text  # among the first rows shown
    assert _count(session, Subscriber) == 1  # the preview wrote nothing
    assert _count(session, TransactionalMail) == 0

    with running_worker(app):
        report = confirm_import(client, preview.get_data(as_text=True))
        assert report.status_code == 200
        text = _text(report)
        assert "7 rows: 2 imported , 5 rejected" in text
        assert "4 carl@example.org unknown topic 'podcast'" in text
        assert "6 dora@example.org suppressed address: it bounced" in text
        ann_mail = inbox.wait_for("ann@example.org")[0].message
        inbox.wait_for("fay@example.org")

    assert ann_mail["Subject"] == "Please confirm your subscription to Health Notices"
    imported = session.scalars(
        select(Subscriber).where(Subscriber.email.in_(["ann@example.org", "fay@example.org"]))
    ).all()
    assert {(s.email, s.name, s.status) for s in imported} == {
        ("ann@example.org", "Ann", "pending"),
        ("fay@example.org", "Fay, the second", "pending"),
    }
    # Each imported row whole (subscriber + consent + confirmation mail), each rejected row absent.
    assert _count(session, Subscriber) == 3 and _count(session, Consent) == 2
    assert session.scalars(select(TransactionalMail.kind)).all() == ["confirm", "confirm"]
    for absent in ("carl@example.org", "dora@example.org"):
        assert session.scalar(select(Subscriber).where(Subscriber.email == absent)) is None
    consent = session.scalars(select(Consent).order_by(Consent.id)).first()
    assert (consent.form, consent.topics, consent.confirmed_at) == ("import", "article,video", None)
    assert "boss@example.org" in consent.wording and "list.csv" in consent.wording
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "subscribers.import"))
    assert audit.one().detail == "2 imported, 5 rejected"

    # The confirmation link works like a signup's: topics from the file apply on confirm.
    confirm_path = path_of(link(CONFIRM_LINK, ann_mail))
    page = client.get(confirm_path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post(confirm_path, data={"csrf_token": token}).status_code == 200
    session.expire_all()
    ann = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.org"))
    assert ann.status == "confirmed" and ann.topic_names == ["article", "video"]


def test_import_with_consent_proof_confirms_at_once_and_sends_no_mail(app, client, session, inbox):
    log_in(client, session)
    proof = "Signup sheet at the 2026 open day, kept in the office"
    content = (
        "\ufeffEmail,Name,Topics,Member since\n"  # as a spreadsheet saves "CSV UTF-8"
        "ann@example.org,Ann,,2019\n"
        "bob@example.org,Bob,video,2020,,\n"  # padded with empty cells: fine
        "cy@example.org,Cy,video,2021,gold\n"  # text beyond the header: refused
    )
    preview = upload(client, content, consent_proof=proof, topics=["article", "webinar"])
    assert "Columns ignored: member since" in _text(preview)
    with running_worker(app):
        report = confirm_import(client, preview.get_data(as_text=True))
        assert "3 rows: 2 imported , 1 rejected" in _text(report)
        assert "4 cy@example.org more fields than the header has columns" in _text(report)
        # A plain import after it: its mail arrives, and it is the only one.
        confirm_import(client, upload(client, "email\nzed@example.org\n").get_data(as_text=True))
        inbox.wait_for("zed@example.org")
    assert [message.rcpt_tos for message in inbox.messages] == [["zed@example.org"]]

    rows = session.scalars(
        select(Subscriber).where(Subscriber.email != "zed@example.org").order_by(Subscriber.email)
    ).all()
    assert [(s.email, s.status, s.topic_names) for s in rows] == [
        ("ann@example.org", "confirmed", ["article", "webinar"]),  # the default topics
        ("bob@example.org", "confirmed", ["video"]),
    ]
    consent = session.scalar(select(Consent).where(Consent.subscriber_id == rows[0].id))
    assert consent.form == "import" and consent.confirmed_at == consent.requested_at
    assert proof in consent.wording and "boss@example.org" in consent.wording
    assert session.scalars(select(TransactionalMail.email)).all() == ["zed@example.org"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"ann@example.org,Ann\nbob@example.org,Bob\n", "the first row must be a header"),
        ("email,name\nann@example.org,Zoë\n".encode("latin-1"), "the file is not UTF-8 text"),
        (b"email\n" + "a@example.org\n".encode("utf-16"), "not UTF-8"),
        (b'email,name\nann@example.org,"Ann\nbob@example.org,Bob\n', "is not valid CSV"),
        (b"email,name,email\nann@example.org,Ann,x@example.org\n", "names email more than once"),
    ],
    ids=["empty", "no header", "latin-1", "utf-16", "open quote", "repeated column"],
)
def test_broken_csv_is_refused_with_a_clear_error_and_nothing_imported(
    client, session, content, message
):
    log_in(client, session)
    response = upload(client, content)
    assert response.status_code == 400
    assert "Nothing was imported" in _text(response) and message in _text(response)
    # The import step re-reads the file whole before writing: a forged post changes nothing.
    forged = client.post(
        "/admin/subscribers/import",
        data={"csrf_token": _csrf(client), "content": base64.b64encode(content)},
    )
    assert forged.status_code == 400
    assert _count(session, Subscriber) == 0 and _count(session, Consent) == 0


def test_a_file_too_large_for_the_web_points_to_the_command(client, session):
    log_in(client, session)
    big = "email\n" + "".join(f"reader{n:07d}@example.org\n" for n in range(25_000))
    response = upload(client, big)
    assert response.status_code == 413
    assert "mailer subscribers import FILE.csv" in _text(response)
    assert _count(session, Subscriber) == 0


# ---- list, search, pages ----


def _seed(session, count: int = 300) -> dict[str, set[int]]:
    """`count` subscribers in every state and topic mix; their ids by state."""
    now = clock.now()
    by_state: dict[str, set[int]] = {}
    for n in range(count):
        state = ("confirmed", "pending", "unsubscribed", "bounced")[n % 4]
        topics = [("article", "video", "webinar")[k] for k in range(3) if (n >> k) & 1] or [
            "article"
        ]
        subscriber = Subscriber(
            email=f"reader{n:03d}@{'example.org' if n % 2 else 'example.net'}",
            name=f"Reader {n:03d}" + (" Smith" if n % 10 == 0 else ""),
            status="confirmed" if state == "bounced" else state,
            created_at=now,
            last_signup_at=now,
            confirmed_at=now if state in {"confirmed", "bounced"} else None,
            topics=[SubscriberTopic(topic=topic) for topic in topics],
        )
        session.add(subscriber)
        session.flush()
        if state == "bounced":
            suppression.suppress(session, subscriber.email, SuppressionReason.HARD_BOUNCE, now=now)
        by_state.setdefault(state, set()).add(subscriber.id)
    session.commit()
    return by_state


def _ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'href="/admin/subscribers/(\d+)"', html)]


def _walk(client, first: str, rel: str) -> tuple[list[int], str]:
    """Follow the rel="next" (or "prev") links from `first`; all ids seen, and the last URL."""
    seen, url = [], first
    while True:
        html = client.get(url).get_data(as_text=True)
        seen.extend(_ids(html))
        found = re.search(rf'rel="{rel}" href="([^"]+)"', html)
        if found is None:
            return seen, url
        url = found.group(1).replace("&amp;", "&")


def test_keyset_pages_return_every_row_exactly_once_both_ways(client, session):
    log_in(client, session)
    by_state = _seed(session, 300)
    every = set().union(*by_state.values())

    forward, last_page = _walk(client, "/admin/subscribers", "next")
    assert len(forward) == 300 and set(forward) == every
    assert forward == sorted(forward, reverse=True)  # newest first, stable
    backward, first_page = _walk(client, last_page, "prev")
    # From the last page back to the first: every row again, once, none missing.
    assert sorted(backward) == sorted(every) and len(backward) == 300
    assert "after=" not in first_page and "before=" in first_page

    # A filter walks its own keyset: bounced video subscribers, across pages of 50.
    bounced_video = {
        i
        for i in by_state["bounced"]
        if session.scalar(
            select(func.count())
            .select_from(SubscriberTopic)
            .where(SubscriberTopic.subscriber_id == i, SubscriberTopic.topic == "video")
        )
    }
    seen, _ = _walk(client, "/admin/subscribers?state=bounced&topic=video", "next")
    assert sorted(seen) == sorted(bounced_video) and len(seen) == len(bounced_video)


def test_search_by_address_or_name_and_filters_by_state(client, session):
    log_in(client, session)
    by_state = _seed(session, 120)
    page = client.get("/admin/subscribers?q=smith")  # name, case-blind, middle of the text
    assert sorted(_ids(page.get_data(as_text=True))) == sorted(
        session.scalars(select(Subscriber.id).where(Subscriber.name.like("%Smith"))).all()
    )
    assert "Reader 010 Smith" in _text(page)
    one = client.get("/admin/subscribers?q=READER007@").get_data(as_text=True)
    assert len(_ids(one)) == 1 and "reader007@example.org" in one
    domain = _ids(client.get("/admin/subscribers?q=@example.net").get_data(as_text=True))
    assert len(domain) == 50  # a full first page of the 60 even-numbered readers
    wildcard = client.get("/admin/subscribers?q=%25_r").get_data(as_text=True)  # literal %_r
    assert _ids(wildcard) == [] and "No subscriber matches." in _text_of(wildcard)
    for state in ("pending", "unsubscribed", "bounced"):
        seen, _ = _walk(client, f"/admin/subscribers?state={state}", "next")
        assert set(seen) == by_state[state], state
    confirmed, _ = _walk(client, "/admin/subscribers?state=confirmed", "next")
    assert set(confirmed) == by_state["confirmed"]  # bounced ones are not "confirmed"
    gone = client.get("/admin/subscribers?state=gone")
    assert gone.status_code == 400 and "State must be one of pending" in _text(gone)
    short = client.get("/admin/subscribers?q=re")  # too short for the trigram index
    assert short.status_code == 400 and "Type at least 3 characters to search" in _text(short)
    assert 'value="re"' in short.get_data(as_text=True)  # kept in the box


def test_export_csv_streams_every_row_of_the_current_filter(client, session):
    log_in(client, session)
    by_state = _seed(session, 120)
    add_confirmed(session, "formula@example.org", ("video",), name='=HYPERLINK("x")')
    session.commit()
    # Closing a streamed response ends its request, and with it the database session.
    with client.get("/admin/subscribers/export.csv?state=pending") as response:
        assert response.status_code == 200 and response.is_streamed
        assert response.headers["Content-Disposition"].startswith("attachment; filename=")
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {row["email"] for row in rows} == {
        session.get(Subscriber, i).email for i in by_state["pending"]
    }
    assert {row["state"] for row in rows} == {"pending"}
    with client.get("/admin/subscribers/export.csv?q=formula") as response:
        both = response.get_data(as_text=True)
    # A name that a spreadsheet would run as a formula is exported behind a quote.
    (exported,) = csv.DictReader(io.StringIO(both))
    assert exported["name"] == '\'=HYPERLINK("x")'
    assert session.scalar(
        select(AuditEntry.detail).where(AuditEntry.action == "subscribers.export").limit(1)
    ) == json.dumps({"state": "pending", "topic": "", "search": False})


# ---- one subscriber ----


def test_subscriber_page_shows_history_and_consent_record(app, client, session):
    log_in(client, session)
    now = clock.now()
    subscriber_id = add_confirmed(session, "ann@example.org", ("article",), name="Ann")
    session.add(
        Consent(
            subscriber_id=subscriber_id,
            requested_at=now,
            ip="203.0.113.7",
            user_agent="Firefox/140",
            form="page",
            source_url="https://site.example/",
            wording="Email me notices of new articles.",
            topics="article",
            confirmed_at=now,
            confirmed_ip="198.51.100.4",
        )
    )
    campaign = Campaign(subject="New this week", topics="article", created_at=now)
    session.add(campaign)
    session.flush()
    session.add(Delivery(campaign_id=campaign.id, subscriber_id=subscriber_id, status="sent"))
    session.add(
        TransactionalMail(
            subscriber_id=subscriber_id, email="ann@example.org", kind="welcome", created_at=now
        )
    )
    subscriber = session.get(Subscriber, subscriber_id)
    subscriber.status, subscriber.unsubscribed_at = "unsubscribed", now
    subscriber.unsubscribe_channel, subscriber.unsubscribed_campaign_id = "one-click", campaign.id
    suppression.suppress(session, "ann@example.org", SuppressionReason.UNSUBSCRIBED, now=now)
    session.commit()

    text = _text(client.get(f"/admin/subscribers/{subscriber_id}"))
    for expected in (
        "ann@example.org",
        "Name Ann",
        "from IP 203.0.113.7",
        "Firefox/140",
        "page on https://site.example/",
        "Email me notices of new articles.",
        "from IP 198.51.100.4",
        "New this week sent",
        "welcome queued",
        "by one-click, from the campaign “New this week”",
        "Suppressed unsubscribed",
    ):
        assert expected in text, expected
    assert client.get("/admin/subscribers/999999").status_code == 404


def test_export_json_downloads_everything_held(client, session):
    log_in(client, session)
    subscriber_id = add_confirmed(session, "ann@example.org", ("video",), name="Ann")
    session.commit()
    response = client.get(f"/admin/subscribers/{subscriber_id}/export.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = response.get_json()
    assert (data["email"], data["name"], data["topics"]) == ("ann@example.org", "Ann", ["video"])
    assert session.scalar(select(AuditEntry.target).where(AuditEntry.action == "subscriber.export"))


def test_erase_asks_for_the_address_then_erases_and_suppresses(client, session):
    log_in(client, session)
    subscriber_id = add_confirmed(session, "ann@example.org", name="Ann")
    session.commit()
    url = f"/admin/subscribers/{subscriber_id}/erase"
    ask = client.get(url)
    assert "Erase ann@example.org?" in _text(ask)
    token = _token(ask.get_data(as_text=True))
    wrong = client.post(url, data={"csrf_token": token, "confirm_email": "bob@example.org"})
    assert wrong.status_code == 400 and "Type the subscriber's address exactly" in _text(wrong)
    assert _count(session, Subscriber) == 1  # nothing erased

    done = client.post(url, data={"csrf_token": token, "confirm_email": "Ann@example.org "})
    assert done.status_code == 303 and done.headers["Location"] == "/admin/subscribers"
    assert "erased" in _text(client.get("/admin/subscribers"))
    assert _count(session, Subscriber) == 0
    entry = session.scalars(select(Suppression)).one()
    assert (entry.email, entry.reason) == (None, "erased")
    assert entry.email_hash == suppression.address_hash(session, "ann@example.org")
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "subscriber.erase")).one()
    assert audit.target == f"subscriber {subscriber_id}" and "ann@" not in audit.detail
    # The erased address cannot come back through an import.
    again = upload(client, "email\nann@example.org\n")
    assert "suppressed address: its owner had their data erased" in _text(again)


# ---- who may see the pages ----

PAGES = [
    "/admin/subscribers",
    "/admin/subscribers/export.csv",
    "/admin/subscribers/{id}",
    "/admin/subscribers/{id}/export.json",
    "/admin/subscribers/{id}/erase",
    "/admin/subscribers/import",
]


def test_editor_gets_403_and_anonymous_is_sent_to_login(app, session):
    subscriber_id = add_confirmed(session, "ann@example.org")
    session.commit()
    anonymous = app.test_client()
    for page in PAGES:
        response = anonymous.get(page.format(id=subscriber_id))
        assert response.status_code == 302, page
        assert response.headers["Location"].startswith("/admin/login"), page
    posted = anonymous.post(f"/admin/subscribers/{subscriber_id}/erase")
    assert posted.status_code in {302, 400}  # to the login page, or refused for its missing token

    editor = app.test_client()
    log_in(editor, session, role="editor", email="ed@example.org")
    for page in PAGES:
        response = editor.get(page.format(id=subscriber_id))
        assert response.status_code == 403, page
        assert "This page is for admins" in _text(response), page
    token = _token(editor.get("/admin/").get_data(as_text=True))
    refused = editor.post(
        f"/admin/subscribers/{subscriber_id}/erase",
        data={"csrf_token": token, "confirm_email": "ann@example.org"},
    )
    assert refused.status_code == 403 and _count(session, Subscriber) == 1


# ---- the command line ----


def test_cli_import_streams_chunks_and_writes_a_report_of_rejections(app, session, tmp_path):
    suppression.suppress(session, "dora@example.org", SuppressionReason.COMPLAINT, now=clock.now())
    session.commit()
    lines = ["email,name,topics"]
    lines += [f"reader{n:05d}@example.org,Reader {n},video" for n in range(2300)]
    lines[1500] = "reader00003@example.org,Again,"  # a duplicate two chunks after its first row
    lines.append("dora@example.org,Dora,")
    lines.append("broken@,Nobody,")
    path = tmp_path / "big list.csv"
    path.write_text("\n".join(lines) + "\n")

    result = _cli(app, "subscribers", "import", str(path), "--consent-proof", "Old list, 2019")
    assert result.exit_code == 0, result.output
    assert (
        "2302 rows, 2299 imported (confirmed (consent proof recorded)), 3 rejected" in result.output
    )
    report = list(csv.reader((tmp_path / "big list.rejected.csv").read_text().splitlines()))
    assert report == [
        ["row", "email", "reason"],
        ["1501", "reader00003@example.org", "duplicate of an earlier row"],
        ["2302", "dora@example.org", "suppressed address: its owner reported our mail as spam"],
        ["2303", "broken@", report[3][2]],
    ]
    assert report[3][2].startswith("invalid address")
    assert _count(session, Subscriber) == 2299 and _count(session, Consent) == 2299
    assert _count(session, TransactionalMail) == 0
    assert session.scalar(
        select(AuditEntry.actor).where(AuditEntry.action == "subscribers.import")
    ).startswith("cli:")

    again = _cli(app, "subscribers", "import", str(path), "--consent-proof", "Old list, 2019")
    assert "0 imported" in again.output and "already a subscriber" in again.output


def test_cli_import_without_proof_sends_confirmation_mails(app, session, inbox, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email,name,topics\nann@example.org,Ann,article\nbob@example.org,,\n")
    with running_worker(app):
        result = _cli(app, "subscribers", "import", str(path), "--topics", "webinar")
        assert result.exit_code == 0, result.output
        assert "2 imported (pending, confirmation mail queued), 0 rejected" in result.output
        inbox.wait_for("ann@example.org")
        inbox.wait_for("bob@example.org")
    assert not (tmp_path / "list.rejected.csv").exists()
    topics = {
        email: topics
        for email, topics in session.execute(select(Subscriber.email, Consent.topics).join(Consent))
    }
    assert topics == {"ann@example.org": "article", "bob@example.org": "webinar"}


def test_cli_import_refuses_a_broken_file_before_writing_anything(app, session, tmp_path):
    path = tmp_path / "list.csv"
    good = "".join(f"reader{n:05d}@example.org,Reader\n" for n in range(3000))
    path.write_bytes(b"email,name\n" + good.encode() + "late@example.org,Zoë\n".encode("latin-1"))
    result = _cli(app, "subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "the file is not UTF-8 text" in result.output
    assert _count(session, Subscriber) == 0  # not even the 3000 good rows before the bad byte
    bad_topics = _cli(app, "subscribers", "import", str(path), "--topics", "podcasts")
    assert bad_topics.exit_code == 1 and "default topics must be some of" in bad_topics.output


def test_cli_export_writes_the_filter_and_imports_back(app, session, tmp_path):
    by_state = _seed(session, 40)
    result = _cli(app, "subscribers", "export", "--state", "bounced", "--topic", "article")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    expected = session.scalars(
        select(Subscriber.email)
        .join(SubscriberTopic)
        .where(Subscriber.id.in_(by_state["bounced"]), SubscriberTopic.topic == "article")
    ).all()
    assert sorted(row["email"] for row in rows) == sorted(expected)
    assert list(rows[0]) == ["email", "name", "topics", "state", "created_at", "confirmed_at"]
    assert _cli(app, "subscribers", "export", "--state", "gone").exit_code == 2

    # Moved to another installation: the export is a valid import file.
    everything = _cli(app, "subscribers", "export").output
    session.execute(sa.delete(Subscriber))
    session.execute(sa.delete(Suppression))
    session.commit()
    path = tmp_path / "export.csv"
    path.write_text(everything)
    again = _cli(
        app, "subscribers", "import", str(path), "--consent-proof", "moved from the old site"
    )
    assert "40 rows, 40 imported" in again.output
    assert "ignored columns: state, created_at, confirmed_at" in again.output


# ---- the embedded default and the schema ----


def test_search_and_import_work_on_sqlite(make_app, sqlite_url, tmp_path):
    app = make_app(database_url=sqlite_url)
    path = tmp_path / "list.csv"
    path.write_text("email,name\n" + "".join(f"r{n}@example.org,Reader {n}\n" for n in range(1200)))
    result = _cli(app, "subscribers", "import", str(path), "--consent-proof", "paper forms")
    assert "1200 imported" in result.output, result.output
    again = _cli(app, "subscribers", "import", str(path), "--consent-proof", "paper forms")
    assert "1200 rejected" in again.output and "already a subscriber" in again.output
    with app.app_context():
        from mailer import db, subscriber_search

        session = db.get_session()
        flt = subscriber_search.SubscriberFilter(query="READER 11")
        names = [row.name for row in subscriber_search.iter_matching(session, flt)]
        assert len(names) == 111 and names[0] == "Reader 1199"  # 11, 110-119, 1100-1199
        page = subscriber_search.search(session, subscriber_search.SubscriberFilter(), limit=7)
        second = subscriber_search.search(
            session, subscriber_search.SubscriberFilter(), after=page.after, limit=7
        )
        assert len({row.id for row in page.rows + second.rows}) == 14


def test_search_indexes_exist_and_models_match_the_migrations(pg_url):
    from alembic import command

    command.check(alembic_config(pg_url))  # raises if the models and migrations disagree
    engine = sa.create_engine(pg_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'subscriber'")
        )
        definitions = {name: definition for name, definition in rows}
    engine.dispose()
    assert "USING gin (email gin_trgm_ops)" in definitions["ix_subscriber_email_trgm"]
    assert "USING gin (name gin_trgm_ops)" in definitions["ix_subscriber_name_trgm"]
