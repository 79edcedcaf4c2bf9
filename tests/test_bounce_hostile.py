"""Anyone can write to the bounce address: hostile mail must neither crash nor stall the reader.

Each message goes through the real Maildir path, by the command an operator
runs and by the beat's task; each is kept unseen and flagged for a person,
nothing changes for anyone, and a good report behind them is still applied.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer import suppression
from mailer.models import BounceEvent, Suppression
from tests.bounce_helpers import cli, drop, dsn, files, received, send_campaign, subscriber_of
from tests.helpers import add_confirmed
from worker import tasks

PLAIN = "bounce@mailer.test"


def _nested(depth: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level)
        for level in range(depth)
    )
    return f"From: x@example.net\nTo: {PLAIN}\n".encode() + head + b"Content-Type: text/plain\n\nhi"


def _hostile() -> dict[str, bytes]:
    dsn_for_victim = dsn(PLAIN, "victim@example.org")
    return {
        "empty": b"",
        "blank lines": b"\n\n\n",
        "ten megabytes": dsn_for_victim + b"X" * (10 * 1024 * 1024),
        "binary": b"\x00\xff\xfe\x00" * 1000,
        "no boundary": (
            f"To: {PLAIN}\nContent-Type: multipart/report; report-type=delivery-status\n\n"
            "--x\nContent-Type: message/delivery-status\n\nAction: failed\n"
            "Final-Recipient: rfc822; victim@example.org\n"
        ).encode(),
        "unterminated parts": dsn_for_victim.rsplit(b"--", 2)[0],
        "bad base64": (
            f"To: {PLAIN}\nSubject: Undelivered Mail\nContent-Transfer-Encoding: base64\n\n"
            "!!!not base64 at all, victim@example.org said: 550 5.1.1 ====\n"
        ).encode(),
        "deep multipart": _nested(3000),
        "deep rfc822": f"To: {PLAIN}\n".encode()
        + b"Content-Type: message/rfc822\n\n" * 3000
        + b"Subject: x\n\nhi\n",
        "many parts": f'To: {PLAIN}\nContent-Type: multipart/mixed; boundary="p"\n\n'.encode()
        + b"--p\nContent-Type: text/plain\n\nvictim@example.org\n" * 5000
        + b"--p--\n",
        "unknown charset": (
            f"To: {PLAIN}\nSubject: =?x-no-such-charset?q?Undeliverable?=\n"
            'Content-Type: text/plain; charset="x-no-such-charset"\n\n'
            "Your message to victim@example.org could not be delivered: 550 5.1.1\n"
        ).encode(),
        "invalid utf-8": (
            f"To: {PLAIN}\nSubject: Delivery failure\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\n"
        ).encode()
        + b"\xc3\x28 \xe2\x82 victim@example.org: 550 user unknown \xff\xfe\n",
        "status part in a bad charset": dsn_for_victim.replace(
            b"Content-Type: message/delivery-status",
            b'Content-Type: message/delivery-status; charset="x-evil"\n'
            b"Content-Transfer-Encoding: base64",
        ),
    }


@pytest.mark.parametrize("entry", ["command", "beat"])
def test_hostile_mail_is_kept_for_a_person_and_the_rest_still_applied(
    make_app, session, inbox, maildir, entry
):
    app = make_app(bounce_mailbox=f"maildir://{maildir}", relay_hold=0.3, send_rate=0)
    add_confirmed(session, "victim@example.org")
    add_confirmed(session, "gone@example.org")
    session.commit()
    send_campaign(app, session)
    hostile = _hostile()
    keys = drop(maildir, *hostile.values())
    [good] = drop(maildir, dsn(received(inbox, "gone@example.org").mail_from, "gone@example.org"))

    if entry == "command":
        result = cli(app, "bounces", "process", "--mailbox", f"maildir://{maildir}")
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0] == f"{len(hostile) + 1} messages processed"
        assert "  hard_bounce: 1" in lines and lines[-1].startswith("messages flagged for a person")
    else:
        with app.app_context():
            counts = tasks.process_bounces()
        assert sum(counts.values()) == len(hostile) + 1 and counts["hard_bounce"] == 1

    flagged = {name.split(":")[0] for name in files(maildir, "cur") if name.endswith(":2,F")}
    assert flagged == set(keys), [n for n, k in zip(hostile, keys, strict=True) if k not in flagged]
    assert f"{good}:2,S" in files(maildir, "cur") and files(maildir, "new") == []
    assert suppression.reason_for(session, "gone@example.org") == "hard_bounce"
    victim = subscriber_of(session, "victim@example.org")
    assert victim.status == "confirmed" and victim.soft_bounces == 0
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    assert session.scalar(select(func.count()).select_from(BounceEvent)) == 1
