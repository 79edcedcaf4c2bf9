"""The bounce mailbox's password never travels in clear or to an unchecked server (item 12).

The attack (from the code): with `imap://`, a server, or anyone on the way,
that offers no STARTTLS received LOGIN with the password in clear; with
`imaps://`, imaplib's default context checked no certificate. Each test runs
`mailer bounces process` against a local IMAP server that records every line.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.security.flows import cli
from tests.security.servers import FakeImap


def _logins(server: FakeImap) -> list[bytes]:
    return [line for line in server.lines if b"LOGIN" in line.upper() or b"hunter2" in line]


def _process(app, server: FakeImap, scheme: str):
    """`mailer bounces process` against the server; then the server is gone."""
    try:
        url = f"{scheme}://bounces:hunter2@127.0.0.1:{server.port}/INBOX"
        return cli(app, "bounces", "process", "--mailbox", url)
    finally:
        server.close()


def test_no_starttls_means_no_login(app):
    server = FakeImap(capabilities="IMAP4rev1 AUTH=PLAIN")
    answer = _process(app, server, "imap")
    assert answer.exit_code == 1 and "offers no STARTTLS" in answer.output
    assert "hunter2" not in answer.output
    assert _logins(server) == []


def test_a_starttls_the_server_refuses_means_no_login(app):
    server = FakeImap(capabilities="IMAP4rev1 STARTTLS LOGINDISABLED")
    answer = _process(app, server, "imap")
    assert answer.exit_code == 1
    assert any(b"STARTTLS" in line for line in server.lines)
    assert _logins(server) == []


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def test_imaps_to_a_server_whose_certificate_nobody_vouches_for_means_no_login(app, tmp_path):
    server = FakeImap(ssl_context=_self_signed(tmp_path))
    answer = _process(app, server, "imaps")
    assert answer.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in answer.output
    assert "hunter2" not in answer.output
    assert _logins(server) == []
