"""The bounce mailbox (MAILER_BOUNCE_MAILBOX): a Maildir or an IMAP folder, read by the beat.

Each unread message is applied by mailer.bounces in its own transaction, then
marked in the mailbox itself, so a message is taken once and the mailbox
stays the record of what came in:

- applied (or a replay, or about no mail of ours): marked seen. A Maildir
  message moves to cur/ with the S flag; an IMAP message gets \\Seen. Nothing
  is deleted; prune old seen mail with the mail system's own tools.
- malformed, forged, or no report at all (an auto-reply, a reader writing to
  the bounce address): left unseen and flagged (F / \\Flagged) for a person.
  Flagged messages are never taken again, so a bad one is not retried forever.

A crash between the commit and the mark only means the message is read again
next time, and a report applied twice changes nothing more.
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import logging
import mailbox as stdlib_mailbox
import os
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session, sessionmaker

from mailer import bounces
from mailer.errors import MailerError
from mailer.tokens import Keys

log = logging.getLogger("mailer.mailbox")

# At most this many messages, and this many seconds, a run: a flood is worked
# off over several runs rather than in one task that outlives the next beat
# (every 300 s). A hostile message costs at most about a second to read.
MAX_PER_RUN = 2000
SECONDS_PER_RUN = 240.0


class MailboxUnavailable(MailerError):
    """The mailbox cannot be opened or read; the message says which and why."""


class Mailbox(Protocol):
    def unread(self, limit: int) -> Iterator[tuple[str, bytes]]:
        """(key, raw message) of every message neither seen nor flagged, oldest first."""
        ...

    def done(self, key: str) -> None:
        """Mark the message seen: it was applied."""
        ...

    def keep(self, key: str) -> None:
        """Flag the message for a person and never take it again."""
        ...

    def close(self) -> None: ...


class MaildirMailbox:
    """A Maildir (new/, cur/, tmp/), read with the stdlib `mailbox` module.

    Flags live in the file name (`KEY:2,FS`, see the Maildir spec); a
    message is marked by renaming it into cur/, which never rewrites it.
    """

    def __init__(self, path: str) -> None:
        if not all(os.path.isdir(os.path.join(path, sub)) for sub in ("new", "cur", "tmp")):
            raise MailboxUnavailable(f"{path} is not a Maildir (it needs new/, cur/ and tmp/)")
        self.path = path
        self.box = stdlib_mailbox.Maildir(path, factory=None, create=False)
        self.colon = self.box.colon
        self._files: dict[str, tuple[str, str]] = {}  # key -> (sub-directory, file name)

    def _flags(self, name: str) -> set[str]:
        info = name.split(self.colon, 1)[1] if self.colon in name else ""
        return set(info[2:]) if info.startswith("2,") else set()

    def unread(self, limit: int) -> Iterator[tuple[str, bytes]]:
        self._files = {}
        for sub in ("new", "cur"):
            for name in os.listdir(os.path.join(self.path, sub)):
                if not name.startswith("."):
                    self._files[name.split(self.colon)[0]] = (sub, name)
        taken = 0
        # Maildir names start with the delivery time: sorted is oldest first.
        for key, (_sub, name) in sorted(self._files.items(), key=lambda item: item[1][1]):
            if taken >= limit:
                return
            if self._flags(name) & {"S", "F"}:
                continue
            try:
                raw = self.box.get_bytes(key)
            except (KeyError, FileNotFoundError):  # another run took it meanwhile
                continue
            taken += 1
            yield key, raw

    def _mark(self, key: str, flag: str) -> None:
        sub, name = self._files[key]
        flags = "".join(sorted(self._flags(name) | {flag}))
        target = f"{key}{self.colon}2,{flags}"
        with contextlib.suppress(FileNotFoundError):  # another run marked it first
            os.rename(os.path.join(self.path, sub, name), os.path.join(self.path, "cur", target))
        self._files[key] = ("cur", target)

    def done(self, key: str) -> None:
        self._mark(key, "S")

    def keep(self, key: str) -> None:
        self._mark(key, "F")

    def close(self) -> None:
        self.box.close()


class ImapMailbox:
    """One IMAP folder over imaplib: UNSEEN UNFLAGGED messages, fetched with BODY.PEEK."""

    def __init__(
        self, url: str, *, timeout: float = 30.0, connect: Callable[..., Any] | None = None
    ) -> None:
        parts = urlsplit(url)
        secure = parts.scheme == "imaps"
        host, port = parts.hostname or "", parts.port or (993 if secure else 143)
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.where = f"{parts.scheme}://{host}:{port}/{folder}"  # no password in messages
        if connect is None:
            # imaplib's own default context checks no certificate: ours does.
            connect = (
                functools.partial(imaplib.IMAP4_SSL, ssl_context=ssl.create_default_context())
                if secure
                else imaplib.IMAP4
            )
        try:
            self.connection = connect(host, port, timeout=timeout)
            if not secure:
                self._start_tls()
            self.connection.login(unquote(parts.username or ""), unquote(parts.password or ""))
            status, detail = self.connection.select(_quoted(folder))
        except (imaplib.IMAP4.error, OSError) as error:
            if hasattr(self, "connection"):  # connected, then refused: hang up
                self.close()
            raise MailboxUnavailable(f"{self.where}: {error}") from None
        if status != "OK":
            self.close()
            raise MailboxUnavailable(f"{self.where}: cannot select the folder: {detail!r}")

    def _start_tls(self) -> None:
        """imap:// means STARTTLS, or no login at all: the password never travels in clear."""
        if "STARTTLS" not in getattr(self.connection, "capabilities", ()):
            self.close()
            raise MailboxUnavailable(
                f"{self.where}: the server offers no STARTTLS, so the password is not sent "
                "(use imaps://, or a server that offers STARTTLS)"
            )
        self.connection.starttls(ssl_context=ssl.create_default_context())

    def unread(self, limit: int) -> Iterator[tuple[str, bytes]]:
        try:
            status, data = self.connection.uid("SEARCH", None, "UNSEEN", "UNFLAGGED")
        except (imaplib.IMAP4.error, OSError) as error:
            raise MailboxUnavailable(f"{self.where}: {error}") from None
        if status != "OK":
            raise MailboxUnavailable(f"{self.where}: SEARCH answered {data!r}")
        uids = data[0].split() if data and data[0] else []
        for uid in uids[:limit]:
            status, data = self.connection.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in data or () if isinstance(item, tuple)), None)
            if status == "OK" and isinstance(raw, bytes):
                yield uid.decode(), raw

    def _store(self, key: str, flag: str) -> None:
        status, data = self.connection.uid("STORE", key, "+FLAGS", f"({flag})")
        if status != "OK":
            log.warning("bounce mailbox %s: cannot flag %s %s: %r", self.where, key, flag, data)

    def done(self, key: str) -> None:
        self._store(key, "\\Seen")

    def keep(self, key: str) -> None:
        self._store(key, "\\Flagged")

    def close(self) -> None:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            self.connection.close()
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            self.connection.logout()


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_mailbox(
    url: str, *, timeout: float = 30.0, imap_connect: Callable[..., Any] | None = None
) -> Mailbox:
    """The mailbox MAILER_BOUNCE_MAILBOX names (the setting's parser checked its form)."""
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        return MaildirMailbox(unquote(parts.path))
    if parts.scheme in ("imap", "imaps"):
        return ImapMailbox(url, timeout=timeout, connect=imap_connect)
    raise MailboxUnavailable(f"unknown mailbox URL scheme {parts.scheme!r}")


def process_mailbox(
    box: Mailbox,
    factory: sessionmaker[Session],
    *,
    secret_key: Keys,
    clock: Callable[[], datetime],
    limit: int = MAX_PER_RUN,
    seconds: float = SECONDS_PER_RUN,
) -> Counter[str]:
    """Apply unread messages and mark each; return the count of each outcome.

    Stops after `limit` messages or once `seconds` have passed (having taken
    at least one); the rest wait for the next run.
    """
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    for key, raw in box.unread(limit):
        if counts and time.monotonic() >= deadline:
            break
        outcome = bounces.process_message(
            factory, raw, secret_key=secret_key, clock=clock, label=key
        )
        if outcome in bounces.NEEDS_A_HUMAN:
            box.keep(key)
        else:
            box.done(key)
        counts[outcome] += 1
    return counts


def process(
    url: str,
    factory: sessionmaker[Session],
    *,
    secret_key: Keys,
    clock: Callable[[], datetime],
    imap_connect: Callable[..., Any] | None = None,
) -> Counter[str]:
    """Open the mailbox at `url`, process it, close it (the beat task and the CLI)."""
    box = open_mailbox(url, imap_connect=imap_connect)
    try:
        return process_mailbox(box, factory, secret_key=secret_key, clock=clock)
    finally:
        box.close()
