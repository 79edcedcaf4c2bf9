"""How mail leaves: an SMTP relay in production, an outbox folder on the embedded default."""

from __future__ import annotations

import contextlib
import io
import smtplib
import ssl
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit


class TemporaryFailure(Exception):
    """4xx or connection trouble: try again later."""


class RelayUnavailable(TemporaryFailure):
    """The relay could not be reached or dropped us: nothing was said about the recipient."""


class PermanentFailure(Exception):
    """5xx for this recipient: never retry."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message and its SMTP envelope (which may differ from its headers)."""

    message: EmailMessage
    mail_from: str
    rcpt_to: str


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: str
    error: TemporaryFailure | PermanentFailure | None = None


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes:
        """The message with a signature header field prepended (mailer.dkim_signing)."""
        ...


def international(item: Outgoing) -> bool:
    """A non-ASCII envelope address: the message must go with SMTPUTF8 (RFC 6531)."""
    return not (item.mail_from.isascii() and item.rcpt_to.isascii())


def wire_bytes(item: Outgoing, signer: Signer | None = None) -> bytes:
    """The message exactly as it goes to the relay, signed last, when every header is final.

    Flattened as smtplib's send_message would: the message's own policy with
    CRLF line ends, and raw UTF-8 headers (policy utf8) when the envelope is
    international.
    """
    message = item.message
    wire_policy = message.policy.clone(utf8=True) if international(item) else message.policy
    with io.BytesIO() as out:
        BytesGenerator(out, policy=wire_policy).flatten(message, linesep="\r\n")
        data = out.getvalue()
    return signer.sign(data) if signer is not None else data


class Transport(Protocol):
    def send(self, outgoing: Sequence[Outgoing]) -> list[SendResult]:
        """Send over one connection and report each message; never raise per recipient."""
        ...


def _failure(code: int, text: str) -> TemporaryFailure | PermanentFailure:
    kind = PermanentFailure if 500 <= code < 600 else TemporaryFailure
    return kind(f"{code} {text}")


def _smtp_error(error: Exception) -> TemporaryFailure | PermanentFailure:
    """Sort an smtplib exception into temporary (retry) or permanent (record and stop)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()))
        return _failure(code, text.decode(errors="replace"))
    if isinstance(error, smtplib.SMTPResponseException):
        return _failure(error.smtp_code, error.smtp_error.decode(errors="replace"))
    if isinstance(error, smtplib.SMTPNotSupportedError):
        # A non-ASCII mailbox and a relay without SMTPUTF8 (RFC 6531): retrying cannot help.
        return PermanentFailure(f"relay cannot carry this address: {error}")
    return RelayUnavailable(f"{type(error).__name__}: {error}")


class SMTPTransport:
    """One connection per process, kept open and reused for every message it sends."""

    def __init__(self, url: str, *, timeout: float = 30.0, signer: Signer | None = None) -> None:
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.starttls = query.get("starttls", "1" if self.port == 587 else "0") == "1"
        self.timeout = float(query.get("timeout", timeout))
        self.signer = signer
        self._connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()  # one SMTP dialogue at a time on the shared connection

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self.implicit_tls:
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                connection.starttls(context=context)
            connection.ehlo_or_helo_if_needed()
            if self.username:
                connection.login(self.username, self.password)
        except BaseException:
            connection.close()  # a refused login must not leak the socket
            raise
        return connection

    def close(self) -> None:
        """Say QUIT and drop the connection."""
        with self._lock:
            self._drop()

    def _drop(self, *, polite: bool = True) -> None:
        """Forget the connection; QUIT first if `polite`, and always close the socket."""
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                if polite:
                    self._connection.quit()
            self._connection.close()
            self._connection = None

    def _send_one(self, item: Outgoing) -> None:
        data = wire_bytes(item, self.signer)
        options = ("SMTPUTF8", "BODY=8BITMIME") if international(item) else ()
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                if options and not self._connection.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError("the relay does not offer SMTPUTF8")
                self._connection.sendmail(item.mail_from, [item.rcpt_to], data, options)
                return
            except smtplib.SMTPServerDisconnected:
                # The relay may have closed our idle connection: reconnect once.
                self._drop(polite=False)
                if attempt == 2:
                    raise

    def send(self, outgoing: Sequence[Outgoing]) -> list[SendResult]:
        results = []
        with self._lock:
            for item in outgoing:
                message_id = str(item.message["Message-ID"])
                try:
                    self._send_one(item)
                    results.append(SendResult(message_id))
                except (smtplib.SMTPException, OSError) as error:
                    failure = _smtp_error(error)
                    if isinstance(failure, TemporaryFailure) and not isinstance(
                        error, smtplib.SMTPResponseException
                    ):
                        self._drop(polite=False)  # the socket is in an unknown state
                    results.append(SendResult(message_id, failure))
        return results


class OutboxTransport:
    """Writes each message to `directory` as one .eml file, as a recipient would receive it."""

    def __init__(self, directory: str | Path, *, signer: Signer | None = None) -> None:
        self.directory = Path(directory)
        self.signer = signer

    def send(self, outgoing: Sequence[Outgoing]) -> list[SendResult]:
        self.directory.mkdir(parents=True, exist_ok=True)
        results = []
        for item in outgoing:
            name = f"{item.message['Date'].datetime:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
            scratch = self.directory / f".{name}.tmp"
            data = wire_bytes(item, self.signer)
            scratch.write_bytes(f"X-Envelope-To: {item.rcpt_to}\r\n".encode() + data)
            scratch.rename(self.directory / name)  # readers never see half a file
            results.append(SendResult(str(item.message["Message-ID"])))
        return results


def from_url(url: str, *, timeout: float = 30.0, signer: Signer | None = None) -> Transport:
    """The transport that MAILER_SMTP_URL names: smtp://, smtps:// or outbox:PATH.

    With a `signer`, every message is signed as it is flattened for sending.
    """
    if url.startswith("outbox:"):
        directory = url.removeprefix("outbox:").removeprefix("//") or "var/outbox"
        return OutboxTransport(directory, signer=signer)
    return SMTPTransport(url, timeout=timeout, signer=signer)
