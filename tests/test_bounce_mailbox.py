"""The bounce mailbox's readers and entry points: IMAP (against a fake imaplib object: no
maintained IMAP test server is on PyPI), the `mailer bounces process` command, the beat's task,
and the bounce settings."""

from __future__ import annotations

import pytest

from mailer import clock, mailbox, suppression
from mailer.mailbox import MailboxUnavailable
from mailer.settings import Settings, SettingsError
from tests.bounce_helpers import SECRET, cli, drop, dsn, received, send_campaign
from tests.helpers import add_confirmed
from worker import tasks
from worker.schedule import beat_schedule

WEBHOOK_SECRET = "webhook-secret-0123456789"


# ---------------------------------------------------------------- IMAP


class FakeIMAP4:
    """imaplib.IMAP4's interface over a dict: what mailer.mailbox calls, with imaplib's replies."""

    def __init__(self, messages: dict[int, bytes], password: str = "pw") -> None:
        self.messages = messages
        self.flags: dict[int, set[str]] = {uid: set() for uid in messages}
        self.password = password
        self.capabilities = ("IMAP4REV1", "IDLE")
        self.logged_out = False
        self.selected = ""

    def __call__(self, host: str, port: int, timeout: float | None = None) -> FakeIMAP4:
        self.host, self.port = host, port
        return self

    def login(self, user: str, password: str):
        if password != self.password:
            import imaplib

            raise imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] Authentication failed.")
        return "OK", [b"Logged in"]

    def select(self, mailbox: str):
        self.selected = mailbox
        return "OK", [str(len(self.messages)).encode()]

    def uid(self, command: str, *args):
        if command == "SEARCH":
            assert args == (None, "UNSEEN", "UNFLAGGED")
            found = [
                str(uid).encode()
                for uid in sorted(self.messages)
                if not self.flags[uid] & {"\\Seen", "\\Flagged"}
            ]
            return "OK", [b" ".join(found)]
        if command == "FETCH":
            uid, what = int(args[0]), args[1]
            assert what == "(BODY.PEEK[])"  # PEEK: fetching alone must not mark it seen
            raw = self.messages[uid]
            return "OK", [(f"1 (UID {uid} BODY[] {{{len(raw)}}}".encode(), raw), b")"]
        if command == "STORE":
            uid, mode, flags = int(args[0]), args[1], args[2]
            assert mode == "+FLAGS"
            self.flags[uid] |= set(flags.strip("()").split())
            return "OK", [f"1 (FLAGS ({' '.join(sorted(self.flags[uid]))}))".encode()]
        raise AssertionError(f"unexpected IMAP command {command}")

    def close(self):
        return "OK", [b"closed"]

    def logout(self):
        self.logged_out = True
        return "BYE", [b"logging out"]


def test_imap_mailbox_marks_applied_reports_seen_and_flags_unmatched_ones(
    campaign_app, session, inbox
):
    app = campaign_app
    add_confirmed(session, "ann@example.org")
    session.commit()
    send_campaign(app, session)
    server = FakeIMAP4(
        {
            7: dsn(received(inbox, "ann@example.org").mail_from, "ann@example.org"),
            8: dsn("bounce@mailer.test", "ann@example.org", status_part=False),
        }
    )
    factory = app.extensions["mailer.sessionmaker"]
    url = "imaps://bounces:pw@imap.mailer.test/Bounces"
    counts = mailbox.process(url, factory, secret_key=SECRET, clock=clock.now, imap_connect=server)
    assert dict(counts) == {"hard_bounce": 1, "unmatched": 1}
    assert server.flags == {7: {"\\Seen"}, 8: {"\\Flagged"}}
    assert (server.host, server.port, server.selected) == ("imap.mailer.test", 993, '"Bounces"')
    assert server.logged_out
    assert suppression.reason_for(session, "ann@example.org") == "hard_bounce"
    again = mailbox.process(url, factory, secret_key=SECRET, clock=clock.now, imap_connect=server)
    assert dict(again) == {}

    with pytest.raises(MailboxUnavailable, match=r"imap\.mailer\.test") as refused:
        mailbox.process(
            "imaps://bounces:wrong@imap.mailer.test/INBOX",
            factory,
            secret_key=SECRET,
            clock=clock.now,
            imap_connect=server,
        )
    assert "wrong" not in str(refused.value)  # the password never reaches a log line


# ---------------------------------------------------------------- CLI, beat, settings


def test_cli_and_beat_process_the_configured_mailbox(make_app, session, inbox, maildir):
    app = make_app(bounce_mailbox=f"maildir://{maildir}", relay_hold=0.3, send_rate=0)
    add_confirmed(session, "ann@example.org")
    add_confirmed(session, "bob@example.org")
    session.commit()
    send_campaign(app, session)
    ann, bob = received(inbox, "ann@example.org"), received(inbox, "bob@example.org")
    drop(
        maildir,
        dsn(ann.mail_from, "ann@example.org"),
        dsn("bounce@mailer.test", "ann@example.org", status_part=False),
    )
    result = cli(app, "bounces", "process")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2 messages processed",
        "  hard_bounce: 1",
        "  unmatched: 1",
        "messages flagged for a person to read were left unseen in the mailbox",
    ]
    assert suppression.reason_for(session, "ann@example.org") == "hard_bounce"

    # The beat's task reads the same mailbox, every 5 minutes, on the housekeeping queue.
    drop(maildir, dsn(bob.mail_from, "bob@example.org"))
    with app.app_context():
        assert tasks.process_bounces() == {"hard_bounce": 1}
    assert beat_schedule()["process-bounces"]["schedule"] == 300.0
    routes = app.extensions["celery"].conf.task_routes
    assert routes["mailer.process_bounces"] == {"queue": "housekeeping"}

    assert cli(app, "bounces", "process").output.splitlines() == ["0 messages processed"]
    missing = cli(app, "bounces", "process", "--mailbox", f"maildir://{maildir}/nope")
    assert missing.exit_code == 1 and "is not a Maildir" in missing.output


def test_cli_without_a_mailbox_says_which_setting(app):
    result = cli(app, "bounces", "process")
    assert result.exit_code == 1 and "MAILER_BOUNCE_MAILBOX is not set" in result.output


REQUIRED = {
    "MAILER_SECRET_KEY": "env-test-key-2d4f6a8c0e1b3d5f-7a9c1e3b5d7f",
    "MAILER_BASE_URL": "https://news.example.com/",
    "MAILER_FROM": "Health Notices <notices@example.com>",
    "MAILER_POSTAL_ADDRESS": "1 Main Street, Springfield",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAILER_BOUNCE_MAILBOX", "maildir://var/mail/bounces"),  # relative
        ("MAILER_BOUNCE_MAILBOX", "/var/mail/bounces"),
        ("MAILER_BOUNCE_MAILBOX", "pop3://u:p@host/INBOX"),
        ("MAILER_BOUNCE_MAILBOX", "imaps://host/INBOX"),  # no credentials
        ("MAILER_BOUNCE_MAILBOX", "imap://u:p@host:port/INBOX"),
        ("MAILER_BOUNCE_WEBHOOK_SECRET", "short"),
        ("MAILER_SES_TOPIC_ARNS", "arn:aws:sns:us-east-1:123:bounces"),  # no account number
        ("MAILER_SES_TOPIC_ARNS", "https://sns.us-east-1.amazonaws.com/topic"),
        ("MAILER_SNS_FETCH_ORIGIN", "file:///etc"),
        ("MAILER_SENDGRID_WEBHOOK_KEY", "not a key"),
        ("MAILER_SENDGRID_WEBHOOK_KEY", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"),
        ("MAILER_MAILGUN_SIGNING_KEY", "short"),
        ("MAILER_POSTMARK_WEBHOOK_AUTH", "only-a-password-0123456789"),
        ("MAILER_POSTMARK_WEBHOOK_AUTH", "user:short"),
    ],
)
def test_malformed_bounce_settings_stop_start_up_naming_them(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**REQUIRED, name: value})


def test_bounce_settings_read_from_the_environment():
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MAILER_BOUNCE_MAILBOX": "imaps://bounces:p%40ss@imap.example.com:993/INBOX",
            "MAILER_BOUNCE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    assert settings.bounce_mailbox.startswith("imaps://bounces:")
    assert settings.bounce_webhook_secret == WEBHOOK_SECRET
    assert Settings.from_env(REQUIRED).bounce_mailbox == ""
