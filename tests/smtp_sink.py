"""An in-process aiosmtpd relay that records what it accepts and can answer faults on purpose."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class Received:
    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    raw: bytes = b""  # exactly as it arrived: headers unparsed


@dataclass
class Inbox:
    """Every message the sink accepted, in order; plus scripted answers to DATA."""

    messages: list[Received] = field(default_factory=list)
    data_attempts: int = 0
    connections: int = 0
    scripted: deque[str] = field(default_factory=deque)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer_next(self, *replies: str) -> None:
        """The next DATA commands get these replies (e.g. '451 4.7.1 try later') before 250s."""
        self.scripted.extend(replies)

    def reset(self) -> None:
        with self._arrived:
            self.messages.clear()
            self.scripted.clear()
            self.data_attempts = 0
            self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1  # smtplib greets once per connection
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope) -> str:
        with self._arrived:
            self.data_attempts += 1
            if self.scripted:
                return self.scripted.popleft()
            message = message_from_bytes(envelope.original_content, policy=policy.default)
            self.messages.append(
                Received(
                    message,
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    list(envelope.mail_options),
                    envelope.original_content,
                )
            )
            self._arrived.notify_all()
        return "250 2.0.0 OK"

    def to(self, address: str) -> list[Received]:
        return [item for item in self.messages if address in item.rcpt_tos]

    def wait_for(self, address: str, *, count: int = 1, timeout: float = 20.0) -> list[Received]:
        """Block until `count` messages to `address` arrived; fail the test otherwise."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.to(address)) >= count, timeout)
            found = self.to(address)
        if len(found) < count:
            raise AssertionError(f"{len(found)} of {count} mails to {address} within {timeout}s")
        return found


def start_sink(port: int, **smtp_options: object) -> tuple[Inbox, Controller]:
    """Start a relay on `port`; `smtp_options` go to aiosmtpd's SMTP (auth, limits...)."""
    inbox = Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True, **smtp_options
    )
    controller.start()
    return inbox, controller
