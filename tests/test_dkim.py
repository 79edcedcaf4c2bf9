"""DKIM: mail received by the relay verifies with dkimpy against a local DNS stub.

DNS is the one part that cannot exist here: each test publishes its key's TXT
record in a stub passed to dkim.verify() as `dnsfunc`, the way a receiving
server would look it up.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import Relaxed
from dkim.util import parse_tag_value

from mailer import clock, create_app, notices
from mailer.cli import main
from mailer.sending import get_mailroom
from mailer.sending.signing import public_record, relaxed_body
from mailer.sending.transport import OutboxTransport, PermanentFailure, SMTPTransport
from mailer.settings import Settings, SettingsError
from tests.conftest import running_worker
from tests.helpers import add_confirmed, free_port, post_signup, run_campaign
from tests.smtp_sink import Inbox

SELECTOR = "mail2026"
DOMAIN = "mailer.test"  # the domain of the test settings' MAILER_FROM

Dns = Callable[..., bytes | None]


def write_key(directory: Path, bits: int = 2048) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path = directory / f"dkim-{bits}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path, key


def dns_stub(records: dict[str, str]) -> Dns:
    """dkimpy's `dnsfunc`: the TXT record for a name, as a resolver would return it."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        value = records.get(name.decode().rstrip(".").lower())
        return value.encode() if value is not None else None

    return lookup


def publish(key: rsa.RSAPrivateKey, selector: str = SELECTOR, domain: str = DOMAIN) -> Dns:
    return dns_stub({f"{selector}._domainkey.{domain}": public_record(key)})


def wire(message) -> bytes:
    """A received message's bytes. The sink keeps it parsed; with refold_source="none" the
    email package writes each header back as it arrived (test_outbox_... checks that)."""
    return message.as_bytes(policy=policy.default.clone(linesep="\r\n", refold_source="none"))


def signature(raw: bytes) -> dict[bytes, bytes]:
    message = message_from_bytes(raw, policy=policy.compat32)
    return parse_tag_value(message["DKIM-Signature"].encode())


def signed_names(raw: bytes) -> list[str]:
    return [name.strip().decode() for name in signature(raw)[b"h"].split(b":")]


@pytest.fixture
def signing_app(make_app, tmp_path):
    def build(bits: int = 2048, **overrides):
        path, key = write_key(tmp_path, bits)
        app = make_app(dkim_key_file=str(path), dkim_selector=SELECTOR, **overrides)
        return app, key

    return build


@pytest.mark.parametrize("bits", [1024, 2048])
def test_confirmation_mail_verifies(signing_app, inbox, bits):
    app, key = signing_app(bits)
    with running_worker(app):
        post_signup(app.test_client(), app, email="ann@example.org")
        [received] = inbox.wait_for("ann@example.org")
    raw = wire(received.message)
    assert dkim.verify(raw, dnsfunc=publish(key))
    tags = signature(raw)
    assert (tags[b"d"], tags[b"s"], tags[b"a"]) == (b"mailer.test", b"mail2026", b"rsa-sha256")
    assert tags[b"c"] == b"relaxed/relaxed"
    names = signed_names(raw)
    for name in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type"):
        assert names.count(name) == 2  # present once, signed twice: a second one breaks it
    assert "list-unsubscribe" not in names  # only headers the mail has
    assert received.message["Subject"] == "Please confirm your subscription to Health Notices"


def test_signing_domain_setting_is_used(signing_app, inbox):
    app, key = signing_app(dkim_domain="news.mailer.test")
    with running_worker(app):
        post_signup(app.test_client(), app, email="dee@example.org")
        [received] = inbox.wait_for("dee@example.org")
    raw = wire(received.message)
    assert signature(raw)[b"d"] == b"news.mailer.test"
    assert dkim.verify(raw, dnsfunc=publish(key, domain="news.mailer.test"))
    assert not dkim.verify(raw, dnsfunc=publish(key))  # the From domain has no such key


def _campaign(app, session, emails: list[str]) -> None:
    notice_id = notices.create_notice(
        session,
        notices.NoticeDraft(kind="article", title="Sleep and pain", url="https://site.example/s"),
        source="cli",
        now=clock.now(),
    )
    for email in emails:
        add_confirmed(session, email, ("article",))
    with running_worker(app):
        run_campaign(app, session, [notice_id])


def test_campaign_mail_verifies_and_covers_one_click_unsubscribe(signing_app, session, inbox):
    app, key = signing_app(send_rate=0)
    dns = publish(key)
    emails = ["bea@example.org", "cal@example.org"]
    _campaign(app, session, emails)
    for email in emails:
        [received] = inbox.to(email)
        raw = wire(received.message)
        assert dkim.verify(raw, dnsfunc=dns), email
        names = signed_names(raw)
        for name in ("list-unsubscribe", "list-unsubscribe-post", "list-id", "from", "subject"):
            assert name in names, name
        assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    head, body = wire(inbox.to("bea@example.org")[0].message).split(b"\r\n\r\n", 1)
    url = re.search(rb"<(https?://[^>]+)>", head.split(b"List-Unsubscribe:", 1)[1]).group(1)
    other_url = url[:-1] + (b"B" if url.endswith(b"A") else b"A")

    def verifies(changed_head: bytes) -> bool:
        """Only the header changes: the body (with the same URL in its footer) stays."""
        return dkim.verify(changed_head + b"\r\n\r\n" + body, dnsfunc=dns)

    assert verifies(head)
    # Pointing the one-click URL elsewhere, or changing the subject, breaks the signature.
    assert not verifies(head.replace(url, b"https://evil.example/u/x"))
    assert not verifies(head.replace(url, other_url))
    assert not verifies(head.replace(b"Subject: New this week", b"Subject: New this week!"))
    # A second List-Unsubscribe prepended on the way: broken too, as it is signed twice
    # (signed once, the verifier would take the original lower one and pass).
    assert not verifies(b"List-Unsubscribe: <https://evil.example/u/x>\r\n" + head)


def test_signing_off_sends_no_signature(app, client, inbox, worker):
    post_signup(client, app, email="eve@example.org")
    [received] = inbox.wait_for("eve@example.org")
    assert "DKIM-Signature" not in received.message


def test_international_mail_goes_signed_over_smtputf8(signing_app, inbox):
    app, key = signing_app()
    outgoing = get_mailroom(app).composer.assemble(
        to="zoë@example.org", subject="Grüße", text="Grüße\n", html="<p>Grüße</p>", now=clock.now()
    )
    [result] = get_mailroom(app).transport.send([outgoing])
    assert result.error is None
    [received] = inbox.wait_for("zoë@example.org")
    assert "SMTPUTF8" in received.mail_options
    assert dkim.verify(wire(received.message), dnsfunc=publish(key))


def _signer(app):
    from mailer.sending import signing as dkim_signing

    return dkim_signing.from_settings(app.extensions["mailer.settings"])


def test_outbox_mail_is_signed_as_sent(signing_app, tmp_path):
    app, key = signing_app()
    outbox = OutboxTransport(tmp_path / "outbox", signer=_signer(app))
    composer = get_mailroom(app).composer
    now = clock.now()
    outbox.send(
        [
            composer.assemble(to=to, subject="Hello", text="Hi\n", html="<p>Hi</p>", now=now)
            for to in ("ann@example.org", "zoë@example.org")
        ]
    )
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    for file in files:
        raw = file.read_bytes()
        assert raw.startswith(b"X-Envelope-To: ")  # outside the signature: verifies regardless
        assert dkim.verify(raw, dnsfunc=publish(key))
        # What the `wire` helper relies on: parsing and writing back gives the same bytes.
        assert wire(message_from_bytes(raw, policy=policy.default)) == raw


def test_relay_without_smtputf8_refuses_only_the_international_mail(signing_app):
    app, key = signing_app()
    plain_inbox, port = Inbox(), free_port()
    relay = Controller(plain_inbox, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    relay.start()
    transport = SMTPTransport(f"smtp://127.0.0.1:{port}", signer=_signer(app))
    composer = get_mailroom(app).composer
    try:
        results = transport.send(
            [
                composer.assemble(
                    to=to, subject="Hi", text="Hi\n", html="<p>Hi</p>", now=clock.now()
                )
                for to in ("zoë@example.org", "ann@example.org")
            ]
        )
    finally:
        transport.close()
        relay.stop()
    assert isinstance(results[0].error, PermanentFailure)
    assert "cannot carry this address" in str(results[0].error)
    assert results[1].error is None
    [received] = plain_inbox.messages
    assert received.rcpt_tos == ["ann@example.org"]
    assert dkim.verify(wire(received.message), dnsfunc=publish(key))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"one line",
        b"prose with single spaces\r\n\r\n\r\n",
        b"two  spaces and\ta tab \t mixed\r\n",
        b"trailing spaces   \r\ntrailing tab\t\r\n \t \r\n\r\n",
        b"no final line end   ",
        b"=20soft=\r\n  indented\r\n\t\ttabbed\r\n",
    ],
)
def test_relaxed_body_is_dkimpys(body):
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (None, "cannot be read"),
        (b"not a key\n", "not a PEM private key"),
        ("ed25519", "must hold an RSA key"),
    ],
)
def test_bad_key_file_stops_start_up(make_settings, tmp_path, content, complaint):
    path = tmp_path / "dkim.pem"
    if content == "ed25519":
        path.write_bytes(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    elif content is not None:
        path.write_bytes(content)
    settings = make_settings(dkim_key_file=str(path), dkim_selector=SELECTOR)
    with pytest.raises(SettingsError, match=f"MAILER_DKIM_KEY_FILE .*{complaint}"):
        create_app(settings)


def test_key_without_selector_stops_start_up(make_settings, tmp_path):
    path, _ = write_key(tmp_path, 1024)
    with pytest.raises(SettingsError, match="MAILER_DKIM_SELECTOR is not set"):
        create_app(make_settings(dkim_key_file=str(path)))


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAILER_DKIM_SELECTOR", "mail;2026"), ("MAILER_DKIM_DOMAIN", "not a domain")],
)
def test_malformed_dkim_setting_is_named(name, value):
    environ = {
        "MAILER_SECRET_KEY": "env-test-key-2d4f6a8c0e1b3d5f-7a9c1e3b5d7f",
        "MAILER_BASE_URL": "https://news.example.com",
        "MAILER_FROM": "Health Notices <notices@example.com>",
        "MAILER_POSTAL_ADDRESS": "1 Main Street",
        name: value,
    }
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(environ)


def _record(output: str) -> tuple[str, str]:
    """The name and value of the printed zone-file line, its strings joined as DNS does."""
    line = next(line for line in output.splitlines() if " IN TXT " in line)
    name, strings = line.split(" IN TXT ", 1)
    return name.rstrip("."), "".join(re.findall(r'"([^"]*)"', strings))


def test_keygen_writes_a_key_and_prints_a_record_that_verifies(make_app, inbox, tmp_path):
    out = tmp_path / "keys" / "dkim.pem"
    out.parent.mkdir()
    environ = {
        "MAILER_SECRET_KEY": "env-test-key-2d4f6a8c0e1b3d5f-7a9c1e3b5d7f",
        "MAILER_BASE_URL": "http://mailer.test",
        "MAILER_FROM": "Health Notices <notices@mailer.test>",
        "MAILER_POSTAL_ADDRESS": "1 Test Street",
        "MAILER_DKIM_KEY_FILE": str(out),  # already set: keygen must not need the app
    }
    runner = CliRunner()
    result = runner.invoke(
        main, ["dkim", "keygen", "--selector", SELECTOR, "--out", str(out)], env=environ
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    name, value = _record(result.stdout)
    assert name == f"{SELECTOR}._domainkey.{DOMAIN}"
    assert value.startswith("v=DKIM1; k=rsa; p=") and len(value) > 255  # split, then joined

    app = make_app(dkim_key_file=str(out), dkim_selector=SELECTOR)
    outgoing = get_mailroom(app).composer.assemble(
        to="fay@example.org", subject="Hello", text="Hi\n", html="<p>Hi</p>", now=clock.now()
    )
    get_mailroom(app).transport.send([outgoing])
    [received] = inbox.wait_for("fay@example.org")
    assert dkim.verify(wire(received.message), dnsfunc=dns_stub({name: value}))

    before = out.read_bytes()
    again = runner.invoke(
        main, ["dkim", "keygen", "--selector", SELECTOR, "--out", str(out)], env=environ
    )
    assert again.exit_code != 0 and "exists" in again.output
    assert out.read_bytes() == before  # the published key is not replaced


def test_keygen_refuses_a_bad_selector_and_writes_nothing(tmp_path):
    out = tmp_path / "dkim.pem"
    result = CliRunner().invoke(
        main,
        ["dkim", "keygen", "--selector", "a b", "--domain", DOMAIN, "--out", str(out)],
    )
    assert result.exit_code == 2 and "--selector" in result.output
    assert not out.exists()
